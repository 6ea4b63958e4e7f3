"""MiO data: on-the-fly training sets, paired folders on disk, test-set building, image I/O.

Example:
    >>> from mio_strategies.data import MiODataset, embedded_image_paths
    >>> ds = MiODataset(embedded_image_paths(), patch_size=64)
    >>> len(ds), ds[0]["lq"].shape
    (42, torch.Size([3, 64, 64]))
"""

from mio_strategies.data._dataset import MiODataset, mio_collate
from mio_strategies.data._io import (
    ImageReadError,
    embedded_image_paths,
    list_images,
    load_embedded_images,
    read_image,
    write_png,
)
from mio_strategies.data._paired import (
    TASK_ALIASES,
    PairedFolderDataset,
    ReferencePairedDataset,
    read_reference_layout,
)
from mio_strategies.data._testsets import TestSetReport, build_testset

__all__ = [
    "ImageReadError",
    "MiODataset",
    "PairedFolderDataset",
    "ReferencePairedDataset",
    "TASK_ALIASES",
    "TestSetReport",
    "build_testset",
    "embedded_image_paths",
    "list_images",
    "load_embedded_images",
    "mio_collate",
    "read_image",
    "read_reference_layout",
    "write_png",
]
