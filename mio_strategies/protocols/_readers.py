"""Datasets over a protocol's layout: training items (paired or noise synthesized on the fly) and test items."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mio_strategies.data import read_image
from mio_strategies.protocols._pairing import pair_folder
from mio_strategies.protocols._spec import Folder, Protocol, ProtocolTask, TestSet
from mio_strategies.tasks import NUM_TASKS
from mio_strategies.utils.rng import generator_from
from mio_strategies.utils.validation import non_negative_int, positive_int

__all__ = [
    "ProtocolTestDataset",
    "ProtocolTrainDataset",
    "add_test_noise",
    "centre_crop_to_multiple",
    "has_composites",
    "resolve_split_root",
]


def resolve_split_root(protocol: Protocol, root: str | Path, split: str) -> Path:
    """The folder holding ``split``'s data under ``root``: the first of the protocol's candidates that exists.

    Raises:
        FileNotFoundError: ``root`` or every candidate is missing (the message lists them and where the
            protocol's data come from).

    Example:
        >>> resolve_split_root(get_protocol("three-task"), "PromptIR", "train")  # doctest: +SKIP
        PosixPath('PromptIR/data/Train')
    """
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"data root {str(base)!r} does not exist")
    candidates = protocol.roots.get(split)
    if candidates is None:
        raise ValueError(f"split must be one of {sorted(protocol.roots)}, got {split!r}")
    for c in candidates:
        if (base / c).is_dir():
            return base / c
    where = ", ".join(str(base / c) for c in candidates)
    raise FileNotFoundError(
        f"no {split} folder for protocol {protocol.name!r} under {str(base)!r}: expected one of {where}. "
        f"Run `mio-strategies data check --protocol {protocol.name} {base}` for the expected tree and where to get "
        "each dataset (docs/benchmarks.md)"
    )


def centre_crop_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Centre-crop the last two axes to multiples of ``multiple`` (the PromptIR family's ``crop_img``).

    Example:
        >>> centre_crop_to_multiple(torch.zeros(3, 37, 50), 16).shape
        torch.Size([3, 32, 48])
    """
    if multiple <= 1:
        return x
    h, w = x.shape[-2:]
    ch, cw = h % multiple, w % multiple
    if h - ch <= 0 or w - cw <= 0:
        raise ValueError(f"an image of {h}x{w} is smaller than the evaluation's crop multiple {multiple}")
    top, left = ch // 2, cw // 2
    return x[..., top : top + h - ch, left : left + w - cw]


def _stem_key(stem: str) -> int:
    return zlib.crc32(stem.encode("utf-8"))


def add_test_noise(clean: torch.Tensor, sigma: float, *, seed: int, stem: str) -> torch.Tensor:
    """The protocol's noisy test input: Gaussian noise of ``sigma`` (8-bit scale), seeded by the image name.

    The noise comes from a generator seeded with ``(seed, sigma, crc32(stem))``, so every run on every
    machine scores the same inputs whatever the file order; the noisy image is clipped to 0..255 and
    truncated to integers, as the PromptIR family's test code does.

    Args:
        clean: ``(3, H, W)`` in [0, 1] on 8-bit levels.
        sigma: standard deviation on the 0..255 scale.
        seed: the protocol's ``evaluation.noise_seed``.
        stem: the image's file stem.

    Example:
        >>> x = torch.full((3, 8, 8), 0.5)
        >>> torch.equal(add_test_noise(x, 25, seed=0, stem="a"), add_test_noise(x, 25, seed=0, stem="a"))
        True
    """
    g = generator_from(seed, round(sigma * 1000), _stem_key(stem))
    levels = torch.round(clean.to(torch.float64) * 255.0)
    noise = torch.randn(clean.shape, generator=g, dtype=torch.float64)
    noisy = torch.floor(torch.clamp(levels + noise * float(sigma), 0.0, 255.0))
    return (noisy / 255.0).to(clean.dtype)


def _train_noise(gt: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    levels = torch.round(gt.to(torch.float64) * 255.0)
    noise = torch.randn(gt.shape, generator=g, dtype=torch.float64)
    return (torch.floor(torch.clamp(levels + noise * float(sigma), 0.0, 255.0)) / 255.0).to(gt.dtype)


def _flip(x: torch.Tensor, hflip: bool, vflip: bool, rot: bool) -> torch.Tensor:
    """Paired flips and transpose of a ``(..., H, W)`` tensor."""
    if hflip:
        x = x.flip(-1)
    if vflip:
        x = x.flip(-2)
    return x.transpose(-2, -1) if rot else x


def has_composites(protocol: Protocol) -> bool:
    """Whether some task of ``protocol`` is made of several library tasks (then items carry ``prompt``)."""
    return any(len(t.components) > 1 for t in protocol.tasks)


def _prompt_weights(task: ProtocolTask) -> torch.Tensor:
    w = torch.zeros(NUM_TASKS)
    ids = task.component_ids
    for i in ids:
        w[i] += 1.0 / len(ids)
    return w


class ProtocolTrainDataset(Dataset):
    """A protocol's training data read from its layout: paired folders, and clean images noised on the fly.

    Index ``i`` holds pair ``i % n`` of the concatenated folders (in the protocol's folder order), so
    ``repeat`` enlarges an epoch. Every random choice of an item (crop, flips, the noise level among
    the task's sigmas, the noise itself) comes from a generator seeded with ``(seed, epoch, i)``: an item
    is replayable and identical in any worker. Items: ``lq``, ``gt`` ``(3, P, P)``, ``task`` (the library
    id of the protocol task's slot, what :class:`~mio_strategies.curriculum.SequentialCurriculumSampler`
    groups by), ``protocol_task`` (the protocol's own name), ``image``, ``index``, ``params`` (``sigma``
    for synthesized noise; empty for paired items) and, for protocols with composite degradations
    (CDD-11), ``prompt``: ``(7,)`` mixing weights over the task's components, what an explicit prompt
    gets (one-hot for a single degradation; the training loop prefers it to ``task``).

    The seed paper's ``mio-7`` protocol synthesizes every task; use :class:`~mio_strategies.data.MiODataset`
    over its ``train/`` folder for it.

    Args:
        protocol: the protocol (``get_protocol("three-task")``).
        root: the user's data root (see :func:`resolve_split_root`).
        tasks: restrict to these protocol task keys (default: all).
        patch_size: square training crop side.
        augment: random paired flips and transpose.
        seed: base seed of every item.
        repeat: passes over the pairs per epoch.

    Raises:
        FileNotFoundError: a missing split root or folder (named).
        ValueError: a folder without any pair, an input without its target (named), or ``mio-7``.
        KeyError: an unknown task key.

    Example:
        >>> ds = ProtocolTrainDataset(get_protocol("three-task"), "data", patch_size=128)  # doctest: +SKIP
        >>> ds[0]["lq"].shape, ds.task_ids[:3]  # doctest: +SKIP
    """

    def __init__(
        self,
        protocol: Protocol,
        root: str | Path,
        *,
        tasks: Iterable[str] | None = None,
        patch_size: int = 128,
        augment: bool = True,
        seed: int = 0,
        repeat: int = 1,
    ) -> None:
        for name, v in (("patch_size", patch_size), ("repeat", repeat)):
            positive_int(name, v)
        non_negative_int("seed", seed)
        folders = [f for f in protocol.folders if f.split == "train"]
        if any(f.pairing == "synthesize" for f in folders):
            raise ValueError(
                f"protocol {protocol.name!r} synthesizes every task from clean images: use "
                "mio_strategies.data.MiODataset over its train/ folder"
            )
        wanted = None if tasks is None else [protocol.task(k).key for k in tasks]
        if wanted is not None:
            folders = [f for f in folders if f.task in wanted]
        split_root = resolve_split_root(protocol, root, "train")
        items: list[tuple[ProtocolTask, Path | None, Path]] = []
        for f in folders:
            items.extend((protocol.task(f.task), lq, gt) for lq, gt in _folder_pairs(split_root, f))  # type: ignore[arg-type]
        self.protocol = protocol
        self.root = split_root
        self._items = items
        self._weights = {t.key: _prompt_weights(t) for t in protocol.tasks} if has_composites(protocol) else None
        self.tasks = tuple(dict.fromkeys(t for t, _, _ in items))
        self.patch_size = patch_size
        self.augment = augment
        self.seed = seed
        self.repeat = repeat
        self.epoch = 0

    def __len__(self) -> int:
        return len(self._items) * self.repeat

    @property
    def task_ids(self) -> torch.Tensor:
        """Library task id (the slot) of every index, for curriculum samplers."""
        base = torch.tensor([t.slot_task.id for t, _, _ in self._items], dtype=torch.int64)
        return base.repeat(self.repeat)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops, flips and noise items are drawn from."""
        non_negative_int("epoch", epoch)
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of length {n}")
        index %= n
        task, lq_path, gt_path = self._items[index % len(self._items)]
        g = generator_from(self.seed, self.epoch, index)
        gt = read_image(gt_path)
        lq = read_image(lq_path) if lq_path is not None else None
        if lq is not None and lq.shape != gt.shape:
            raise ValueError(f"input {str(lq_path)!r} is {tuple(lq.shape[-2:])} but its target {str(gt_path)!r} is "
                             f"{tuple(gt.shape[-2:])}: `mio-strategies data check` names every such pair")
        p = self.patch_size
        h, w = gt.shape[-2:]
        if h < p or w < p:
            raise ValueError(f"image {str(gt_path)!r} ({h}x{w}) is smaller than patch_size={p}")
        top = int(torch.randint(0, h - p + 1, (1,), generator=g))
        left = int(torch.randint(0, w - p + 1, (1,), generator=g))
        gt = gt[:, top : top + p, left : left + p]
        if lq is not None:
            lq = lq[:, top : top + p, left : left + p]
        if self.augment:
            hflip, vflip, rot = (bool(f) for f in torch.rand(3, generator=g) < 0.5)
            gt = _flip(gt, hflip, vflip, rot)
            lq = _flip(lq, hflip, vflip, rot) if lq is not None else None
        gt = gt.contiguous()
        params: dict[str, torch.Tensor] = {}
        if lq is None:
            sigma = task.sigmas[int(torch.randint(len(task.sigmas), (1,), generator=g))]
            lq = _train_noise(gt, sigma, g)
            params["sigma"] = torch.tensor(float(sigma))
        item = {
            "lq": lq.contiguous(), "gt": gt, "task": task.slot_task.id, "protocol_task": task.key,
            "image": gt_path.stem if lq_path is None else lq_path.stem, "index": index, "params": params,
        }
        if self._weights is not None:
            item["prompt"] = self._weights[task.key].clone()
        return item


def _folder_pairs(split_root: Path, folder: Folder) -> list[tuple[Path | None, Path]]:
    gt_dir = split_root / folder.gt
    lq_dir = split_root / folder.lq if folder.lq is not None else None
    for d in (gt_dir, lq_dir):
        if d is not None and not d.is_dir():
            raise FileNotFoundError(
                f"folder {str(d)!r} of {folder.key!r} does not exist: run `mio-strategies data check` on the root "
                "for the expected tree"
            )
    res = pair_folder(folder.pairing, gt_dir, lq_dir, recursive=folder.recursive)
    if res.orphans or res.bad_names:
        bad = (res.orphans + res.bad_names)[:5]
        raise ValueError(f"{len(res.orphans) + len(res.bad_names)} inputs of {folder.key!r} have no target "
                         f"(first: {[str(b) for b in bad]}); `mio-strategies data check` lists them all")
    if not res.pairs:
        raise ValueError(f"no images in {str(gt_dir)!r} ({folder.key!r})")
    return res.pairs


class ProtocolTestDataset(Dataset):
    """One test set of a protocol, evaluated as the protocol says (crop to a multiple, seeded noise).

    Items: ``lq``, ``gt`` ``(3, H, W)`` (centre-cropped to ``evaluation.crop_multiple``), ``task`` (the
    slot's library id), ``protocol_task``, ``test_set``, ``image``, ``index``, ``prompt`` (CDD-11, as in
    :class:`ProtocolTrainDataset`) and ``params`` (``sigma`` for noisy test sets). Denoising inputs come
    from :func:`add_test_noise`, so two reads, runs or machines give identical inputs.

    Args:
        protocol: the protocol.
        root: the user's data root.
        test_set: a test-set name (``"bsd68-25"``) or :class:`TestSet`.
        limit: read only the first ``limit`` pairs (quick checks).

    Raises:
        FileNotFoundError / ValueError / KeyError: as :class:`ProtocolTrainDataset`.

    Example:
        >>> ds = ProtocolTestDataset(get_protocol("three-task"), "data", "bsd68-25")  # doctest: +SKIP
    """

    def __init__(self, protocol: Protocol, root: str | Path, test_set: str | TestSet, *, limit: int | None = None) -> None:
        ts = protocol.test_set(test_set) if isinstance(test_set, str) else test_set
        folder = protocol.folder(ts.folder)
        if folder.pairing == "clean" and ts.sigma is None:
            raise ValueError(f"test set {ts.name!r} reads clean images but has no sigma to noise them with")
        split_root = resolve_split_root(protocol, root, "test")
        pairs = _folder_pairs(split_root, folder)
        if limit is not None:
            positive_int("limit", limit, note=" or None")
            pairs = pairs[:limit]
        self.protocol = protocol
        self.test_set = ts
        self.task = protocol.task(ts.task)
        self._pairs = pairs
        self._prompt = _prompt_weights(self.task) if has_composites(protocol) else None

    def __len__(self) -> int:
        return len(self._pairs)

    @property
    def task_ids(self) -> torch.Tensor:
        """The slot id of every index (one test set holds one task)."""
        return torch.full((len(self._pairs),), self.task.slot_task.id, dtype=torch.int64)

    def __getitem__(self, index: int) -> dict[str, Any]:
        lq_path, gt_path = self._pairs[index]
        ev = self.protocol.evaluation
        gt = centre_crop_to_multiple(read_image(gt_path), ev.crop_multiple)
        params: dict[str, torch.Tensor] = {}
        if lq_path is None:
            sigma = self.test_set.sigma
            lq = add_test_noise(gt, float(sigma), seed=ev.noise_seed, stem=gt_path.stem)  # type: ignore[arg-type]
            params["sigma"] = torch.tensor(float(sigma))  # type: ignore[arg-type]
        else:
            lq = centre_crop_to_multiple(read_image(lq_path), ev.crop_multiple)
            if lq.shape != gt.shape:
                raise ValueError(f"input {str(lq_path)!r} is {tuple(lq.shape[-2:])} but its target {str(gt_path)!r} "
                                 f"is {tuple(gt.shape[-2:])}")
        item = {
            "lq": lq, "gt": gt, "task": self.task.slot_task.id, "protocol_task": self.task.key,
            "test_set": self.test_set.name, "image": (lq_path or gt_path).stem, "index": index, "params": params,
        }
        if self._prompt is not None:
            item["prompt"] = self._prompt.clone()
        return item
