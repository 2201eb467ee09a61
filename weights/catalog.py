"""The official SAM and HQ-SAM checkpoints, as data.

Each file is one frozen :class:`WeightsEntry` (name, model kind, encoder
architecture, file name, URL, size in bytes, sha256 and where the hash comes
from), validated on construction. :data:`CATALOG` holds them and is looked up
by name:

    >>> CATALOG.entry("sam-vit-b").file_name
    'sam_vit_b_01ec64.pth'
    >>> CATALOG.entry("hq-sam-vit-h").arch
    'vit_h'

Meta publishes no hashes for SAM; the sha256 values are those of the Git-LFS
pointers of public Hugging Face mirrors (see ``sha256_source`` per entry).
Functions that search, download or verify take a ``catalog`` argument, so tests
and private deployments can use a :class:`Catalog` of their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from box2mask.errors import UsageError

#: the ``--model`` that loads an entry: a prompt model of :data:`box2mask.models.MODELS`
Kind = str

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def prompt_models() -> tuple[str, ...]:
    """The values :data:`Kind` can have: the models that load published weights.

    A prompt model with ``default_weights`` in the model registry (``ros-sam``
    has none: its weights come from ``box2mask train``).
    """
    from box2mask.models.registry import MODELS  # the package registers the models

    return tuple(n for n, spec in MODELS.items() if spec.needs_checkpoint and spec.default_weights)


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable checkpoint file.

    Attributes:
        name: registry name used on the command line (``sam-vit-b``).
        kind: the ``--model`` that loads it (``"sam"``, ``"hq-sam"``: a prompt
            model of the model registry).
        arch: image-encoder architecture (``"vit_b"``, ``"vit_l"``,
            ``"vit_h"``; ``"vit_t"`` for the TinyViT-5M of MobileSAM and Light HQ-SAM).
        file_name: the file's name on disk; always the last path segment of ``url``.
        url: where the publisher serves it (https).
        size: size in bytes.
        sha256: lowercase hex sha256 of the whole file.
        sha256_source: where the hash comes from (the publisher gives none).
        loadable: ``False`` for files box2mask lists but cannot load.
        note: one line shown next to the entry (why it is not loadable, ...).
    """

    name: str
    kind: Kind
    arch: str
    file_name: str
    url: str
    size: int
    sha256: str
    sha256_source: str
    loadable: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        def bad(what: str) -> ValueError:
            # A catalog entry is code, not user input: a ValueError fails at import/test time.
            return ValueError(f"weights entry {self.name!r}: {what}")

        if not _NAME_RE.match(self.name):
            raise bad("name must be lowercase letters, digits, '.' and '-'")
        if self.kind not in prompt_models():
            raise bad(f"kind must be one of {prompt_models()}, got {self.kind!r}")
        if not self.arch:
            raise bad("arch is empty")
        url = urlparse(self.url)
        if url.scheme != "https" or not url.netloc:
            raise bad(f"url must be an https URL, got {self.url!r}")
        if url.path.rsplit("/", 1)[-1] != self.file_name or not self.file_name:
            raise bad(f"file_name {self.file_name!r} is not the last segment of {self.url!r}")
        if "/" in self.file_name or self.file_name.startswith("."):
            raise bad(f"file_name {self.file_name!r} must be a plain file name")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size <= 0:
            raise bad(f"size must be a positive int, got {self.size!r}")
        if not _SHA256_RE.match(self.sha256):
            raise bad(f"sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        if not self.sha256_source:
            raise bad("sha256_source is empty")


class Catalog(Mapping[str, WeightsEntry]):
    """Entries by name; refuses duplicate names and duplicate file names.

    A :class:`~collections.abc.Mapping` (``catalog["sam-vit-b"]``, ``in``,
    iteration in the order given); :meth:`entry` is the lookup for user input.
    """

    def __init__(self, entries: Iterable[WeightsEntry]) -> None:
        self._entries: dict[str, WeightsEntry] = {}
        files: dict[str, str] = {}
        for e in entries:
            if e.name in self._entries:
                raise ValueError(f"weights entry {e.name!r} is registered twice")
            if e.file_name in files:
                # Two names for one file would make "is it present?" ambiguous.
                raise ValueError(
                    f"weights entries {files[e.file_name]!r} and {e.name!r} share the file "
                    f"name {e.file_name!r}"
                )
            self._entries[e.name] = e
            files[e.file_name] = e.name

    def __getitem__(self, name: str) -> WeightsEntry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, name: str) -> WeightsEntry:
        """The entry called ``name``; a :class:`UsageError` lists the known names."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self._entries) or "none"
            raise UsageError(f"unknown weights name {name!r}; known: {known}") from None

    def by_sha256(self, sha256: str) -> WeightsEntry | None:
        """The entry whose file has this hex sha256, if any."""
        sha256 = sha256.lower()
        return next((e for e in self._entries.values() if e.sha256 == sha256), None)

    def by_file_name(self, file_name: str) -> WeightsEntry | None:
        """The entry whose file is called ``file_name``, if any."""
        return next((e for e in self._entries.values() if e.file_name == file_name), None)


# WEIGHTS.md records the SAM hashes as coming from public Hugging Face mirrors, without
# naming the mirror; the HQ-SAM files are served from the Hugging Face repository itself.
_HF_SAM = "Git-LFS pointer of a public Hugging Face mirror of {f} (Meta publishes no hash)"
_HF_HQ = "Git-LFS pointer of the Hugging Face repository lkeab/hq-sam ({f})"
_FB = "https://dl.fbaipublicfiles.com/segment_anything/"
_HQ = "https://huggingface.co/lkeab/hq-sam/resolve/main/"


def _official(
    kind: str, arch: str, file_name: str, size: int, sha256: str, **extra: object
) -> WeightsEntry:
    """An entry named ``<kind>-<arch>`` (``sam-vit-b``) served at its publisher's URL."""
    base, source = (_FB, _HF_SAM) if kind == "sam" else (_HQ, _HF_HQ)
    return WeightsEntry(
        name=f"{kind}-{arch.replace('_', '-')}",
        kind=kind,
        arch=arch,
        file_name=file_name,
        url=base + file_name,
        size=size,
        sha256=sha256,
        sha256_source=source.format(f=file_name),
        **extra,  # type: ignore[arg-type]
    )


def _sam(arch: str, file_name: str, size: int, sha256: str) -> WeightsEntry:
    return _official("sam", arch, file_name, size, sha256)


def _hq(
    arch: str, size: int, sha256: str, *, loadable: bool = True, note: str = ""
) -> WeightsEntry:
    return _official("hq-sam", arch, f"sam_hq_{arch}.pth", size, sha256, loadable=loadable, note=note)


OFFICIAL_ENTRIES: tuple[WeightsEntry, ...] = (
    _sam(
        "vit_b",
        "sam_vit_b_01ec64.pth",
        375_042_383,
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
    ),
    _sam(
        "vit_l",
        "sam_vit_l_0b3195.pth",
        1_249_524_607,
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
    ),
    _sam(
        "vit_h",
        "sam_vit_h_4b8939.pth",
        2_564_550_879,
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
    ),
    _hq("vit_b", 379_335_069, "14a9d662cd6f5a9c2dba6d40ab0058d88d287e4a18fd6fdc6ad5fb1a3fdeaa57"),
    _hq("vit_l", 1_254_865_805, "e1a6c385d62bf005ded91a54d5ec55c985cfc4103ef89c08d90f39f04934c343"),
    _hq("vit_h", 2_570_940_653, "a7ac14a085326d9fa6199c8c698c4f0e7280afdbb974d2c4660ec60877b45e35"),
    # Light HQ-SAM (TinyViT-5M encoder, HQ decoder): HQ-SAM's README links this file.
    WeightsEntry(
        name="hq-sam-vit-t",
        kind="hq-sam",
        arch="vit_t",
        file_name="sam_hq_vit_tiny.pth",
        url=_HQ + "sam_hq_vit_tiny.pth",
        size=42_526_881,
        sha256="0f32c075ccdd870ae54db2f7630e7a0878ede5a2b06d05d6fe02c65a82fb7196",
        sha256_source=_HF_HQ.format(f="sam_hq_vit_tiny.pth"),
        note="Light HQ-SAM: TinyViT-5M encoder, for CPUs",
    ),
    # MobileSAM (TinyViT-5M encoder, SAM's decoder). Its GitHub repository
    # (ChaoningZhang/MobileSAM) ships the file as weights/mobile_sam.pt, committed on
    # 2023-06-29 by its contributor Donghoon Kim (dhkim2810), who uploaded it the same
    # day to his Hugging Face repository dhkim2810/MobileSAM (commit 87955d8); that
    # repository's Git-LFS pointer gives the size and sha256 below, and the same pointer
    # is in the HF demo space dhkim2810/MobileSAM that MobileSAM's README links. The
    # URL is that repository's, so the file served is the one hashed.
    WeightsEntry(
        name="mobile-sam-vit-t",
        kind="sam",
        arch="vit_t",
        file_name="mobile_sam.pt",
        url="https://huggingface.co/dhkim2810/MobileSAM/resolve/main/mobile_sam.pt",
        size=40_728_226,
        sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        sha256_source=(
            "Git-LFS pointer of the Hugging Face repository dhkim2810/MobileSAM "
            "(mobile_sam.pt; MobileSAM publishes no hash)"
        ),
        note="MobileSAM: TinyViT-5M encoder, for CPUs",
    ),
)

# SAM 2.1 (Meta, 2024-09-28): URLs from Meta's checkpoints/download_ckpts.sh
# (facebookresearch/sam2 at 2b90b9f); Meta publishes no hashes. Sizes and sha256 as
# pinned alike by several independent public projects that download these files (the
# base-plus hash is also its LFS blob name in a Hugging Face cache of
# facebook/sam2.1-hiera-base-plus); not re-checked by a download here (no network).
_SAM2 = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
_HF_SAM2 = (
    "pinned alike by independent public projects that download {f} "
    "(the Hugging Face facebook/{r} LFS object); Meta publishes none"
)


def _sam2(size_name: str, arch: str, size: int, sha256: str) -> WeightsEntry:
    file_name = f"sam2.1_hiera_{size_name.replace('-', '_')}.pt"
    return WeightsEntry(
        name=f"sam2.1-hiera-{size_name}",
        kind="sam2",
        arch=arch,
        file_name=file_name,
        url=_SAM2 + file_name,
        size=size,
        sha256=sha256,
        sha256_source=_HF_SAM2.format(r=f"sam2.1-hiera-{size_name}", f=file_name),
    )


SAM2_ENTRIES: tuple[WeightsEntry, ...] = (
    _sam2("tiny", "hiera_t", 156_008_466, "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69"),
    _sam2("small", "hiera_s", 184_416_285, "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38"),
    _sam2("base-plus", "hiera_b+", 323_606_802, "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5"),
    _sam2("large", "hiera_l", 898_083_611, "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318"),
)  # fmt: skip

CATALOG = Catalog(OFFICIAL_ENTRIES + SAM2_ENTRIES)
"""The official checkpoints, smallest encoder first within each kind."""
