"""The official weights catalog: every entry's schema, and the validation that guards it."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlparse

import pytest
from box2mask.weights import CATALOG, OFFICIAL_ENTRIES, Catalog, WeightsEntry

from box2mask.errors import UsageError

EXPECTED_NAMES = {
    "sam-vit-b",
    "sam-vit-l",
    "sam-vit-h",
    "hq-sam-vit-b",
    "hq-sam-vit-l",
    "hq-sam-vit-h",
    "hq-sam-vit-t",
    "mobile-sam-vit-t",
    "sam2.1-hiera-tiny",
    "sam2.1-hiera-small",
    "sam2.1-hiera-base-plus",
    "sam2.1-hiera-large",
}


@pytest.mark.parametrize("entry", OFFICIAL_ENTRIES, ids=lambda e: e.name)
def test_official_entry_schema(entry: WeightsEntry) -> None:
    url = urlparse(entry.url)
    assert url.scheme == "https" and url.netloc
    assert url.path.split("/")[-1] == entry.file_name
    assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    assert isinstance(entry.size, int) and entry.size > 0
    assert entry.sha256_source
    assert entry.kind in ("sam", "hq-sam")
    family = "mobile-sam" if entry.file_name == "mobile_sam.pt" else entry.kind
    assert entry.name == f"{family}-{entry.arch.replace('_', '-')}"
    assert entry.file_name.endswith((".pth", ".pt"))
    assert entry.arch in ("vit_b", "vit_l", "vit_h", "vit_t")
    assert entry.loadable  # TinyViT (vit_t) included: box2mask loads every official file
    if entry.arch == "vit_t":
        assert "TinyViT" in entry.note


def test_catalog_names_files_and_hashes_are_unique() -> None:
    entries = list(CATALOG.values())
    assert set(CATALOG) == EXPECTED_NAMES
    assert len({e.name for e in entries}) == len(entries)
    assert len({e.file_name for e in entries}) == len(entries)
    assert len({e.sha256 for e in entries}) == len(entries)
    assert len({e.url for e in entries}) == len(entries)


def test_known_values_from_weights_md() -> None:
    # Spot checks against the table in WEIGHTS.md (a typo here breaks every download).
    b = CATALOG.entry("sam-vit-b")
    assert b.url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"
    assert b.size == 375_042_383
    assert b.sha256.startswith("ec2df627") and b.sha256.endswith("eb8c912")
    h = CATALOG.entry("hq-sam-vit-h")
    assert h.url == "https://huggingface.co/lkeab/hq-sam/resolve/main/sam_hq_vit_h.pth"
    assert h.size == 2_570_940_653
    assert h.sha256.startswith("a7ac14a0")


def test_sam2_entries() -> None:
    # Meta's download script (URLs) and the hashes/sizes public projects pin for these files
    from box2mask.weights.catalog import SAM2_ENTRIES

    base = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
    want = {
        "tiny": ("hiera_t", 156_008_466, "7402e0d8"),
        "small": ("hiera_s", 184_416_285, "6d1aa6f3"),
        "base-plus": ("hiera_b+", 323_606_802, "a2345aed"),
        "large": ("hiera_l", 898_083_611, "2647878d"),
    }
    assert [e.name for e in SAM2_ENTRIES] == [f"sam2.1-hiera-{k}" for k in want]
    for e in SAM2_ENTRIES:
        arch, size, sha = want[e.name.removeprefix("sam2.1-hiera-")]
        assert (e.kind, e.arch, e.size, e.sha256[:8]) == ("sam2", arch, size, sha)
        assert e.url == base + e.file_name and e.file_name.startswith("sam2.1_hiera_")
        assert e.loadable and "facebook/" + e.name in e.sha256_source


def test_tinyvit_entries() -> None:
    # MobileSAM: size and sha256 from the Git-LFS pointer of dhkim2810/MobileSAM on Hugging
    # Face; Light HQ-SAM: WEIGHTS.md (lkeab/hq-sam's pointer)
    m = CATALOG.entry("mobile-sam-vit-t")
    assert (m.kind, m.arch, m.file_name, m.size) == ("sam", "vit_t", "mobile_sam.pt", 40_728_226)
    assert m.url == "https://huggingface.co/dhkim2810/MobileSAM/resolve/main/mobile_sam.pt"
    assert m.sha256.startswith("6dbb9052") and m.sha256.endswith("4e37d6c2f")
    h = CATALOG.entry("hq-sam-vit-t")
    assert (h.kind, h.arch, h.file_name, h.size) == ("hq-sam", "vit_t", "sam_hq_vit_tiny.pth", 42_526_881)
    assert h.url == "https://huggingface.co/lkeab/hq-sam/resolve/main/sam_hq_vit_tiny.pth"
    assert h.sha256.startswith("0f32c075")


def test_lookups() -> None:
    e = CATALOG.entry("hq-sam-vit-l")
    assert CATALOG.by_sha256(e.sha256.upper()) is e
    assert CATALOG.by_file_name("sam_hq_vit_l.pth") is e
    assert CATALOG.by_sha256("0" * 64) is None
    with pytest.raises(UsageError, match="unknown weights name 'sam-vit-x'; known: sam-vit-b"):
        CATALOG.entry("sam-vit-x")


GOOD = OFFICIAL_ENTRIES[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "http://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"}, "https"),
        ({"file_name": "other.pth"}, "last segment"),
        ({"sha256": "EC2D" + GOOD.sha256[4:]}, "64 lowercase hex"),
        ({"sha256": GOOD.sha256[:-1]}, "64 lowercase hex"),
        ({"size": 0}, "positive"),
        ({"size": True}, "positive"),
        ({"kind": "ros-sam"}, "kind"),
        ({"name": "SAM B"}, "name"),
        ({"sha256_source": ""}, "sha256_source"),
    ],
)
def test_invalid_entries_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(GOOD, **change)


def test_catalog_refuses_duplicates() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        Catalog([GOOD, GOOD])
    renamed = dataclasses.replace(GOOD, name="sam-copy")
    with pytest.raises(ValueError, match="share the file name"):
        Catalog([GOOD, renamed])
