"""The checkpoint registry: official SAM / HQ-SAM files, where they live, download and verify.

    >>> from box2mask.weights import CATALOG, resolve_checkpoint
    >>> CATALOG.entry("hq-sam-vit-b").url
    'https://huggingface.co/lkeab/hq-sam/resolve/main/sam_hq_vit_b.pth'

See ``docs/weights.md`` for the search order and the commands.
"""

from __future__ import annotations

from box2mask.weights.catalog import CATALOG, OFFICIAL_ENTRIES, Catalog, WeightsEntry
from box2mask.weights.download import (
    MIRROR_ENV,
    Progress,
    download,
    sha256_file,
    source_url,
    verify_file,
)
from box2mask.weights.resolve import (
    default_download_dir,
    find_local,
    how_to_get,
    human_size,
    resolve_checkpoint,
    search_dirs,
)

__all__ = [
    "CATALOG",
    "MIRROR_ENV",
    "OFFICIAL_ENTRIES",
    "Catalog",
    "Progress",
    "WeightsEntry",
    "default_download_dir",
    "download",
    "find_local",
    "how_to_get",
    "human_size",
    "resolve_checkpoint",
    "search_dirs",
    "sha256_file",
    "source_url",
    "verify_file",
]
