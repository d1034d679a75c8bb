"""Layers in and out of snapshots: apply() unpacks one onto mounts, compare() makes one."""

from containerd.diff.apply import apply, apply_to_dir
from containerd.diff.compare import CompareResult, compare, compare_to_content, write_diff
from containerd.diff.types import (
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    UNCOMPRESSED_LABEL,
    Descriptor,
)

__all__ = [
    "DOCKER_LAYER",
    "DOCKER_LAYER_GZIP",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "UNCOMPRESSED_LABEL",
    "CompareResult",
    "Descriptor",
    "apply",
    "apply_to_dir",
    "compare",
    "compare_to_content",
    "write_diff",
]
