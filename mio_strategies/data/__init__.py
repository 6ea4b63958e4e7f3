"""MiO data: on-the-fly training sets, paired folders on disk, test-set building, image I/O.

Example:
    >>> from mio_strategies.data import MiODataset, embedded_image_paths
    >>> ds = MiODataset(embedded_image_paths(), patch_size=64)
    >>> len(ds), ds[0]["lq"].shape
    (42, torch.Size([3, 64, 64]))
"""

from mio_strategies.data._dataset import MiODataset, mio_collate
from mio_strategies.data._deferred import DEVICE_TASKS, SYNTHESES, check_synthesis, degrade_deferred
from mio_strategies.data._io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    MAX_PIXELS_HELP,
    ImageReadError,
    ImageTooLargeError,
    embedded_image_paths,
    image_size,
    list_images,
    load_embedded_images,
    max_pixels_arg,
    pixel_limit,
    read_image,
    write_png,
)
from mio_strategies.data._paired import (
    TASK_ALIASES,
    CompositeFolderDataset,
    PairedFolderDataset,
    ReferencePairedDataset,
    composite_folders,
    open_testset,
    read_reference_layout,
)
from mio_strategies.data._testsets import TestSetReport, build_testset

__all__ = [
    "MAX_PIXELS_HELP",
    "CompositeFolderDataset",
    "DEFAULT_MAX_PIXELS",
    "DEVICE_TASKS",
    "SYNTHESES",
    "check_synthesis",
    "degrade_deferred",
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "ImageTooLargeError",
    "MiODataset",
    "PairedFolderDataset",
    "ReferencePairedDataset",
    "TASK_ALIASES",
    "TestSetReport",
    "build_testset",
    "composite_folders",
    "embedded_image_paths",
    "image_size",
    "list_images",
    "load_embedded_images",
    "mio_collate",
    "open_testset",
    "max_pixels_arg",
    "pixel_limit",
    "read_image",
    "read_reference_layout",
    "write_png",
]
