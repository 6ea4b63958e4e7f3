"""MiODataset: ground-truth images, one degraded version per (image, task), synthesized on the fly."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import torch
from torch.utils.data import Dataset

from mio_strategies.data._deferred import DEVICE_TASKS, check_synthesis
from mio_strategies.data._io import CURRENT_LIMIT, PathLike, image_size, list_images, read_image, resolve_max_pixels
from mio_strategies.degradations import (
    IMPLEMENTATIONS,
    JPEG_CODECS,
    PRESETS,
    STREAMS,
    crop_to_multiple,
    degrade,
    load_depth,
    sample_params,
)
from mio_strategies.tasks import TaskLike, parse_tasks
from mio_strategies.utils.rng import generator_from
from mio_strategies.utils.validation import choice, is_int, non_negative_int, positive_int

ImageSource = Union[PathLike, Sequence[PathLike | torch.Tensor]]


def augment_geometry(x: torch.Tensor, hflip: bool, vflip: bool, rot90: bool) -> torch.Tensor:
    """Apply the paired flips/transpose of BasicSR's ``augment`` to a ``(..., H, W)`` tensor."""
    if hflip:
        x = x.flip(-1)
    if vflip:
        x = x.flip(-2)
    if rot90:
        x = x.transpose(-2, -1)
    return x


def random_crop_box(height: int, width: int, patch: int, generator: torch.Generator) -> tuple[int, int]:
    """Top-left corner of a uniformly random ``patch`` x ``patch`` window."""
    top = int(torch.randint(0, height - patch + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - patch + 1, (1,), generator=generator))
    return top, left


class MiODataset(Dataset):
    """Multiple-in-one training data: each item is a GT patch and one degraded version of it.

    Index ``i`` holds image ``(i // num_tasks) % num_images`` degraded by task ``tasks[i % num_tasks]``;
    ``repeat`` enlarges an epoch (each repetition draws other crops). Everything random in an item
    (crop, flips, degradation parameters) comes from a generator seeded with ``(seed, epoch, i)``,
    so an item is identical whatever the DataLoader worker that builds it. Call :meth:`set_epoch`
    at each epoch (as with ``DistributedSampler``); with ``persistent_workers=True`` the epoch seen by
    workers is the one they were started with.

    Args:
        images: a folder of GT images, a list of image paths, or a list of ``(3, H, W)`` float tensors in
            [0, 1]. A bare tensor is refused (``TypeError``): pass ``list(batch)`` for a ``(N, 3, H, W)``
            batch, ``[image]`` for one image.
        tasks: the tasks to synthesize (letters ``"SBNJRHL"``, names, ids); default all seven.
        patch_size: side of the square training patch; ``None`` keeps whole images (then batches need
            equal sizes).
        preset: degradation ranges, ``"in"`` (training / In-Dis) or ``"out"`` (Out-Dis).
        ranges: per-task overrides of the preset ranges, ``{task: {param: (lo, hi)}}``, e.g.
            ``{"blur": {"sigma": (1, 2)}}`` (not the flat ``{"blur": (1, 2)}``).
        augment: random horizontal/vertical flips and transpose of the GT before degradation.
        seed: base seed of every item's generator.
        repeat: how many times each (image, task) pair appears in one epoch.
        depth_dir: optional folder of haze depth maps named after the images (``<stem>.npy``,
            ``.png`` or ``.mat``); read for haze items only, cropped and augmented with the image.
            Without it, haze uses the library's default depth estimate.
        cache: keep decoded GT images in memory (default for fewer than 64 images); with
            ``implementation="reference"``, also the degraded images.
        stream: random stream of the noise and rain fields, ``"torch"`` or ``"philox"`` (``None``: the
            degradations' default; see :func:`~mio_strategies.degradations.sample_params`). It changes the
            noise and rain images only, no crop or parameter.
        max_pixels: refuse an image file of more pixels than this, from its header, before decoding
            (:class:`~mio_strategies.data.ImageTooLargeError`); default: the limit in force
            (:func:`~mio_strategies.data.pixel_limit`, else 64 megapixels); ``None`` or ``0``: none.
        implementation: ``"library"`` (default): each item crops a patch, augments it, then degrades it
            with parameters drawn anew per epoch. ``"reference"``: the official code's data path: each
            (image, task) pair has ONE degraded version, made from the whole image (cropped top-left to
            multiples of 4) with ``degrade(..., implementation="reference")`` and parameters fixed for the
            whole training (the reference makes its data offline); items crop the same random patch from
            the GT and that degraded image, then flip/transpose both. Give sub-images of the reference's
            size (300x300) rather than whole 2K photos: the whole image is degraded.
        synthesis: ``"loader"`` (default): items hold their degraded patch. ``"device"``: items of the
            tasks that can be degraded as a batch on the training device (all but haze with a ``depth_dir``
            and JPEG with the Pillow codec, which runs on the CPU; JPEG with ``jpeg_codec="diffjpeg"``) hold
            the GT as ``lq`` with ``deferred=True`` and the sampled ``params``; :func:`degrade_deferred`
            then degrades a batch's deferred items, grouped by task, on the device. The crops and
            parameters are the same as with ``"loader"``, so the batches are too (see
            :func:`degrade_deferred`). Only with ``implementation="library"``.
        jpeg_codec: the JPEG codec, ``"pillow"`` (Pillow's libjpeg, on the CPU, per image) or
            ``"diffjpeg"`` (the reference's differentiable JPEG model, batched torch on any device; with
            ``synthesis="device"`` JPEG items are then deferred to the device too); ``None`` (default): the
            implementation's, Pillow for ``"library"``, DiffJPEG for ``"reference"`` (which refuses
            ``"pillow"``). The DiffJPEG codec is recorded in the JPEG items' params (``"codec"``); it
            changes the JPEG images only, no crop or parameter.

    Items are dicts: ``lq`` and ``gt`` ``(3, P, P)`` float tensors, ``task`` (int id), ``index``,
    ``image`` (name) and ``params`` (the sampled degradation parameters, 0-d tensors). Parameter keys
    differ between tasks, so batch with ``collate_fn=mio_collate``. With ``synthesis="device"`` items
    also hold ``deferred`` (bool).

    Raises:
        ValueError: no images, an image smaller than ``patch_size``, bad sizes, preset or ranges, an image
            tensor with values outside [0, 1] or NaN.
        TypeError: a bare tensor as ``images``, ``ranges`` not a ``{task: {param: (lo, hi)}}`` dict.
        UnknownTaskError: an unknown task.
        ImageReadError: an unreadable image file (named in the message).

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from mio_strategies.data import MiODataset, embedded_image_paths, mio_collate
        >>> ds = MiODataset(embedded_image_paths(), tasks="SN", patch_size=32, seed=0)
        >>> batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=mio_collate)))
        >>> batch["lq"].shape, batch["task"].tolist()
        (torch.Size([4, 3, 32, 32]), [0, 2, 0, 2])
    """

    def __init__(
        self,
        images: ImageSource,
        tasks: str | Iterable[TaskLike] = "SBNJRHL",
        *,
        patch_size: int | None = 128,
        preset: str = "in",
        ranges: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
        augment: bool = True,
        seed: int = 0,
        repeat: int = 1,
        depth_dir: PathLike | None = None,
        cache: bool | None = None,
        stream: str | None = None,
        max_pixels: Any = CURRENT_LIMIT,
        implementation: str = "library",
        synthesis: str = "loader",
        jpeg_codec: str | None = None,
    ) -> None:
        choice("implementation", implementation, IMPLEMENTATIONS)
        check_synthesis(synthesis, implementation)
        if jpeg_codec is not None:
            choice("jpeg_codec", jpeg_codec, JPEG_CODECS, plural="values",
                   note=" (or None: the implementation's)")
            if implementation == "reference" and jpeg_codec != "diffjpeg":
                raise ValueError(
                    f"jpeg_codec={jpeg_codec!r} with implementation='reference', whose JPEG codec is DiffJPEG: use "
                    "implementation='library' for Pillow, or jpeg_codec='diffjpeg' (or None) with the reference"
                )
        self.jpeg_codec = jpeg_codec
        self.max_pixels = resolve_max_pixels(max_pixels)

        self.tasks = parse_tasks(tasks)
        choice("preset", preset, sorted(PRESETS))
        if patch_size is not None:
            positive_int("patch_size", patch_size)
        positive_int("repeat", repeat)
        non_negative_int("seed", seed)
        if stream is not None:
            choice("stream", stream, STREAMS, what="random stream", plural="streams", note=" (or None, the default)")
        self.stream = stream
        self._ranges = self._validate_ranges(ranges, jpeg_codec)

        self._tensors: list[torch.Tensor | None]
        if isinstance(images, torch.Tensor):
            raise TypeError(
                "images must be a folder, a list of image paths or a list of (3, H, W) tensors; got a single "
                f"tensor of shape {tuple(images.shape)}: pass list(batch) for a (N, 3, H, W) batch or [image] "
                "for one (3, H, W) image"
            )
        if isinstance(images, (str, Path)) or not isinstance(images, Sequence):
            paths: list[Path | None] = list(list_images(images))
            self._tensors = [None] * len(paths)
        else:
            items = list(images)
            if not items:
                raise ValueError("empty image list: give a folder or at least one image")
            paths, self._tensors = [], []
            for it in items:
                if isinstance(it, torch.Tensor):
                    self._check_gt_tensor(it, len(paths))
                    paths.append(None)
                    self._tensors.append(it.detach().float())
                else:
                    paths.extend(list_images([it]))
                    self._tensors.append(None)
        self._paths = paths
        self.names = [p.stem if p is not None else f"image{i:04d}" for i, p in enumerate(paths)]

        sizes = [
            tuple(t.shape[-2:]) if t is not None else image_size(p, max_pixels=self.max_pixels)  # type: ignore[arg-type]
            for p, t in zip(paths, self._tensors)
        ]
        if implementation == "reference":  # the reference's crop to multiples of 4
            sizes = [(h - h % _REFERENCE_MULTIPLE, w - w % _REFERENCE_MULTIPLE) for h, w in sizes]
        if patch_size is not None:
            small = [f"{n} ({h}x{w})" for n, (h, w) in zip(self.names, sizes) if h < patch_size or w < patch_size]
            if small:
                raise ValueError(
                    f"images smaller than patch_size={patch_size}: {small}; use a smaller patch_size "
                    "or drop these images"
                )
        self.sizes = sizes
        self.depth_dir = Path(depth_dir) if depth_dir is not None else None
        if self.depth_dir is not None and not self.depth_dir.is_dir():
            raise FileNotFoundError(f"depth_dir {str(self.depth_dir)!r} is not a folder")

        self.patch_size = patch_size
        self.preset = preset
        self.augment = augment
        self.seed = seed
        self.repeat = repeat
        self.epoch = 0
        self.cache = len(paths) < 64 if cache is None else bool(cache)
        self.implementation = implementation
        self.synthesis = synthesis
        self._degraded: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]] = {}
        self._num_tasks = len(self.tasks)
        self._task_id_table = torch.tensor([t.id for t in self.tasks], dtype=torch.int64)

    @staticmethod
    def _check_gt_tensor(t: torch.Tensor, i: int) -> None:
        if t.ndim != 3 or t.shape[0] != 3 or not t.is_floating_point():
            raise ValueError(
                f"image tensor {i} must be a float (3, H, W) tensor in [0, 1], got "
                f"{t.dtype} of shape {tuple(t.shape)}"
            )
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"image tensor {i} contains NaN or infinite values; give finite values in [0, 1]")
        lo, hi = float(t.min()), float(t.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"image tensor {i} has values in [{lo:.4g}, {hi:.4g}]; scale it to [0, 1]")

    @staticmethod
    def _validate_ranges(ranges: Any, jpeg_codec: str | None = None) -> dict[int, dict[str, Any]]:
        if ranges is None:
            return {}
        example = '{"blur": {"sigma": (1.0, 2.0)}}'
        if not isinstance(ranges, Mapping):
            raise TypeError(
                f"ranges must be a dict {{task: {{param: (lo, hi)}}}}, e.g. {example}; got {type(ranges).__name__} "
                f"{ranges!r}"
            )
        out = {}
        for key, rng in ranges.items():
            if not isinstance(rng, Mapping):
                raise TypeError(
                    f"ranges[{key!r}] must be a dict {{param: (lo, hi)}} (ranges are per task, then per "
                    f"parameter, e.g. {example}); got {type(rng).__name__} {rng!r}"
                )
            task = parse_tasks([key])[0]
            # sample once to let the degradation module validate the ranges now, not mid-epoch
            sample_params(task, 1, generator=torch.Generator().manual_seed(0), ranges=dict(rng), codec=jpeg_codec)
            out[task.id] = dict(rng)
        return out

    # -- sampler-facing API -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._paths) * self._num_tasks * self.repeat

    @property
    def task_ids(self) -> torch.Tensor:
        """Task id of every index (``int64``, length ``len(self)``), for curriculum samplers."""
        reps = len(self._paths) * self.repeat
        return self._task_id_table.repeat(reps)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops and degradations items are drawn from."""
        non_negative_int("epoch", epoch)
        self.epoch = epoch

    # -- items -------------------------------------------------------------------------------
    def _gt(self, image_index: int) -> torch.Tensor:
        t = self._tensors[image_index]
        if t is not None:
            return t
        img = read_image(self._paths[image_index], max_pixels=self.max_pixels)  # type: ignore[arg-type]
        if self.cache:
            self._tensors[image_index] = img
        return img

    def _depth(self, image_index: int, size: tuple[int, int]) -> torch.Tensor | None:
        if self.depth_dir is None:
            return None
        stem = self.names[image_index]
        for suffix in (".npy", ".png", ".mat"):
            p = self.depth_dir / f"{stem}{suffix}"
            if p.is_file():
                return load_depth(p, size=size).reshape(1, *size)
        raise FileNotFoundError(f"no depth map for image {stem!r} in {str(self.depth_dir)!r} (.npy, .png or .mat)")

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for MiODataset of length {n}")
        index %= n
        task = self.tasks[index % self._num_tasks]
        image_index = (index // self._num_tasks) % len(self._paths)
        g = generator_from(self.seed, self.epoch, index)

        if self.implementation == "reference":
            return self._reference_item(index, task, image_index, g)
        gt = self._gt(image_index)
        # only haze uses a depth map (degrade refuses one for the other tasks); skip reading it otherwise
        depth = self._depth(image_index, (gt.shape[-2], gt.shape[-1])) if task.name == "haze" else None
        if self.patch_size is not None:
            p = self.patch_size
            top, left = random_crop_box(gt.shape[-2], gt.shape[-1], p, g)
            gt = gt[:, top : top + p, left : left + p]
            if depth is not None:
                depth = depth[:, top : top + p, left : left + p]
        if self.augment:
            flips = torch.rand(3, generator=g) < 0.5
            hflip, vflip, rot = (bool(f) for f in flips)
            gt = augment_geometry(gt, hflip, vflip, rot)
            if depth is not None:
                depth = augment_geometry(depth, hflip, vflip, rot)
        gt = gt.contiguous()
        if self.synthesis == "device":
            deferred = task.name in DEVICE_TASKS and not (
                (task.name == "haze" and self.depth_dir is not None)
                or (task.name == "jpeg" and self.jpeg_codec != "diffjpeg")  # Pillow: on the CPU, per image
            )
            if deferred:  # the parameters degrade() would draw, the same draws from the same generator
                params = sample_params(task, 1, preset=self.preset, generator=g, ranges=self._ranges.get(task.id),
                                       stream=self.stream, codec=self.jpeg_codec)
                item = self._item(gt, gt, task, index, image_index, params)
                item["deferred"] = True
                return item
        lq, params = degrade(
            gt.unsqueeze(0),
            task,
            preset=self.preset,
            generator=g,
            depth=None if depth is None else depth.unsqueeze(0),
            ranges=self._ranges.get(task.id),
            stream=self.stream,
            codec=self.jpeg_codec,
        )
        item = self._item(lq[0], gt, task, index, image_index, params)
        if self.synthesis == "device":
            item["deferred"] = False
        return item

    def _item(self, lq: torch.Tensor, gt: torch.Tensor, task: Any, index: int, image_index: int,
              params: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "lq": lq,
            "gt": gt,
            "task": task.id,
            "index": index,
            "image": self.names[image_index],
            "params": {k: v[0] if isinstance(v, torch.Tensor) else v for k, v in params.items()},
        }

    def _reference_pair(self, task: Any, image_index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The one degraded version of (image, task) of the reference's offline data, and its GT and params."""
        key = (image_index, task.id)
        pair = self._degraded.get(key)
        if pair is not None:
            return pair
        gt = crop_to_multiple(self._gt(image_index), _REFERENCE_MULTIPLE).contiguous()
        depth = self._depth(image_index, (int(gt.shape[-2]), int(gt.shape[-1]))) if task.name == "haze" else None
        # the parameters depend on the image and the task only, not on the epoch: one LQ per pair
        g = generator_from(self.seed, _REFERENCE_STREAM, image_index, task.id)
        lq, params = degrade(
            gt.unsqueeze(0),
            task,
            preset=self.preset,
            generator=g,
            depth=None if depth is None else depth.unsqueeze(0),
            ranges=self._ranges.get(task.id),
            implementation="reference",
            stream=self.stream,
            codec=self.jpeg_codec,
        )
        pair = (lq[0], gt, {k: v[0] if isinstance(v, torch.Tensor) else v for k, v in params.items()})
        if self.cache:
            self._degraded[key] = pair
        return pair

    def _reference_item(self, index: int, task: Any, image_index: int, g: torch.Generator) -> dict[str, Any]:
        lq, gt, params = self._reference_pair(task, image_index)
        if self.patch_size is not None:
            p = self.patch_size
            top, left = random_crop_box(gt.shape[-2], gt.shape[-1], p, g)
            gt = gt[:, top : top + p, left : left + p]
            lq = lq[:, top : top + p, left : left + p]
        if self.augment:
            hflip, vflip, rot = (bool(f) for f in torch.rand(3, generator=g) < 0.5)
            gt = augment_geometry(gt, hflip, vflip, rot)
            lq = augment_geometry(lq, hflip, vflip, rot)
        return {
            "lq": lq.contiguous(),
            "gt": gt.contiguous(),
            "task": task.id,
            "index": index,
            "image": self.names[image_index],
            "params": dict(params),
        }


#: the reference crops its images (rain, haze) to multiples of this; its data are 300x300 sub-images
_REFERENCE_MULTIPLE = 4
#: key of the degradation stream of the reference path (independent of the per-item (epoch, index) streams)
_REFERENCE_STREAM = 1 << 40


def mio_collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch MiO items: tensors and ints are stacked; ``params`` and strings stay per-sample lists.

    Degradation parameters have task-specific keys, so PyTorch's default collate cannot stack them.

    Example:
        >>> DataLoader(dataset, batch_size=16, collate_fn=mio_collate)  # doctest: +SKIP
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        first = values[0]
        if isinstance(first, torch.Tensor):
            out[key] = torch.stack(values)
        elif not is_int(first):
            out[key] = values
        else:
            out[key] = torch.tensor(values, dtype=torch.int64)
    return out
