"""Readers for degraded/GT pairs stored on disk: the library's test sets and the reference's layouts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mio_strategies.data._dataset import augment_geometry, random_crop_box
from mio_strategies.data._io import IMAGE_SUFFIXES, PathLike, read_image
from mio_strategies.tasks import TASKS, Task, TaskLike, get_task, parse_tasks
from mio_strategies.utils.rng import generator_from
from mio_strategies.utils.validation import non_negative_int, positive_int

MANIFEST_NAME = "manifest.json"

# Folder names (and the reference's file-name prefixes) understood for each task, besides the
# canonical name and letter. The reference calls low-light "dark".
TASK_ALIASES: dict[str, tuple[str, ...]] = {
    "sr": ("sr", "S", "super_resolution", "bicubic"),
    "blur": ("blur", "B", "deblur", "deblurring"),
    "noise": ("noise", "N", "denoise", "denoising"),
    "jpeg": ("jpeg", "J", "jpg"),
    "rain": ("rain", "R", "derain", "deraining"),
    "haze": ("haze", "H", "dehaze", "dehazing"),
    "lowlight": ("lowlight", "L", "low_light", "low-light", "dark", "lol"),
}
"""Task name -> the folder names a paired test set may use for it (case-insensitive)."""

# alias (lower case) -> task name
_ALIAS_TO_TASK: dict[str, str] = {a.lower(): name for name, aliases in TASK_ALIASES.items() for a in aliases}


def _images_by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def _folder_pairs(folder: Path, gts: Mapping[str, Path], gt_dir: Path) -> list[tuple[str, Path, Path]]:
    """``(stem, lq_path, gt_path)`` of every image in ``folder``, matched to ``gts`` by stem.

    Raises:
        ValueError: images without a ground truth (the first five are named).
    """
    lqs = _images_by_stem(folder)
    orphans = sorted(set(lqs) - set(gts))
    if orphans:
        raise ValueError(
            f"images in {str(folder)!r} without a ground truth in {str(gt_dir)!r}: {orphans[:5]}"
            + (" ..." if len(orphans) > 5 else "")
        )
    return [(stem, lqs[stem], gts[stem]) for stem in sorted(lqs)]


def _read_pair(stem: str, lq_path: Path, gt_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    lq, gt = read_image(lq_path), read_image(gt_path)
    if lq.shape != gt.shape:
        raise ValueError(
            f"pair {stem!r} has LQ {tuple(lq.shape[-2:])} ({str(lq_path)!r}) but GT "
            f"{tuple(gt.shape[-2:])} ({str(gt_path)!r}); the library's tasks keep the GT size"
        )
    return lq, gt


def _dataset_dirs(root: PathLike, gt_folder: str) -> tuple[Path, Path]:
    """``(root, root / gt_folder)``, both checked to exist (the message names the missing one)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {str(root)!r} does not exist")
    gt_dir = root / gt_folder
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"no ground-truth folder {gt_folder!r} in {str(root)!r}")
    return root, gt_dir


def _read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"corrupt manifest {str(path)!r}: {exc}") from exc


def _detect_task_folders(root: Path) -> dict[int, Path]:
    """Task id -> the folder under ``root`` named after the task (its name, letter or an alias)."""
    subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    found: dict[int, Path] = {}
    for task in TASKS:
        for alias in TASK_ALIASES[task.name]:
            if alias.lower() in subdirs:
                found[task.id] = subdirs[alias.lower()]
                break
    return found


def _task_folders(root: Path, folders: Mapping[TaskLike, str] | None, tasks: Iterable[Task] | None) -> dict[int, Path]:
    """Map task id -> existing folder under root."""
    found: dict[int, Path] = {}
    if folders is not None:
        for key, name in folders.items():
            task = get_task(key)
            path = root / name
            if not path.is_dir():
                raise FileNotFoundError(f"folder {str(path)!r} given for task {task.name!r} does not exist")
            found[task.id] = path
    else:
        found = _detect_task_folders(root)
    if tasks is not None:
        wanted = {t.id for t in tasks}
        missing = [t.name for t in TASKS if t.id in wanted and t.id not in found]
        if missing:
            raise FileNotFoundError(
                f"no folder for tasks {missing} under {str(root)!r}; expected one of "
                f"{[list(TASK_ALIASES[m]) for m in missing]} or pass folders={{task: name}}"
            )
        found = {k: v for k, v in found.items() if k in wanted}
    if not found:
        raise FileNotFoundError(
            f"no task folder under {str(root)!r}: expected folders named after tasks "
            f"({', '.join(t.name for t in TASKS)}) beside a GT folder"
        )
    return dict(sorted(found.items()))


class PairedFolderDataset(Dataset):
    """Degraded/GT pairs from disk: a ``GT/`` folder beside one folder per task.

    This reads the library's test sets (see :func:`build_testset`, whose ``manifest.json`` adds each
    pair's degradation parameters) and precomputed training data laid out the same way, such as the
    reference implementation's data re-arranged per task. Task folders are found by name: the task's
    name, letter or a common alias (the reference calls low-light ``dark``); ``folders=`` maps them
    explicitly. Pairs are matched by file stem.

    Args:
        root: folder holding ``GT/`` (or ``gt_folder``) and the task folders.
        tasks: restrict to these tasks (default: every task folder found).
        folders: explicit ``{task: folder name}`` mapping.
        gt_folder: name of the ground-truth folder.
        patch_size: random paired crop side for training; ``None`` returns whole images.
        augment: random paired flips/transpose (training).
        seed: seed of crops and flips (items are a function of ``(seed, epoch, index)``).

    Items: ``lq``, ``gt`` (float tensors), ``task`` (int), ``image`` (stem), ``index`` and, when a
    manifest exists, ``params`` (the degradation parameters that produced ``lq``).

    Raises:
        FileNotFoundError: missing ``GT`` or task folders (the message names what was expected).
        ValueError: an LQ image without its GT (names them), or sizes that differ within a pair.

    Example:
        >>> ds = PairedFolderDataset("mio-testset")  # doctest: +SKIP
        >>> ds[0]["lq"].shape  # doctest: +SKIP
    """

    def __init__(
        self,
        root: PathLike,
        *,
        tasks: str | Iterable[TaskLike] | None = None,
        folders: Mapping[TaskLike, str] | None = None,
        gt_folder: str = "GT",
        patch_size: int | None = None,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        root, gt_dir = _dataset_dirs(root, gt_folder)
        if patch_size is not None:
            positive_int("patch_size", patch_size, note=" or None")
        task_list = parse_tasks(tasks) if tasks is not None else None
        task_dirs = _task_folders(root, folders, task_list)
        gts = _images_by_stem(gt_dir)

        manifest_params: dict[tuple[int, str], dict[str, Any]] = {}
        self.manifest: dict[str, Any] | None = _read_manifest(root)
        if self.manifest is not None:
            for entry in self.manifest.get("entries", []):
                if len(entry.get("tasks", [entry.get("task")])) == 1 and "task" in entry:
                    manifest_params[(get_task(entry["task"]).id, entry["image"])] = entry.get("params", {})

        pairs: list[tuple[int, str, Path, Path]] = []
        for tid, folder in task_dirs.items():
            pairs.extend((tid, stem, lq, gt) for stem, lq, gt in _folder_pairs(folder, gts, gt_dir))
        if not pairs:
            raise ValueError(f"no image pairs found under {str(root)!r}")
        self.root = root
        self._pairs = pairs
        self._manifest_params = manifest_params
        self.tasks = tuple(TASKS[t] for t in task_dirs)
        self.patch_size = patch_size
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self._pairs)

    @property
    def task_ids(self) -> torch.Tensor:
        """Task id of every index (``int64``), for curriculum samplers."""
        return torch.tensor([p[0] for p in self._pairs], dtype=torch.int64)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops and flips items are drawn from."""
        non_negative_int("epoch", epoch)
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, Any]:
        tid, stem, lq_path, gt_path = self._pairs[index]
        lq, gt = _read_pair(stem, lq_path, gt_path)
        if self.patch_size is not None or self.augment:
            g = generator_from(self.seed, self.epoch, index)
            if self.patch_size is not None:
                p = self.patch_size
                h, w = gt.shape[-2:]
                if h < p or w < p:
                    raise ValueError(f"image {str(gt_path)!r} ({h}x{w}) is smaller than patch_size={p}")
                top, left = random_crop_box(h, w, p, g)
                lq, gt = (x[:, top : top + p, left : left + p] for x in (lq, gt))
            if self.augment:
                hflip, vflip, rot = (bool(f) for f in torch.rand(3, generator=g) < 0.5)
                lq, gt = (augment_geometry(x, hflip, vflip, rot).contiguous() for x in (lq, gt))
        item: dict[str, Any] = {"lq": lq, "gt": gt, "task": tid, "index": index, "image": stem}
        params = self._manifest_params.get((tid, stem))
        if params is not None:
            item["params"] = {k: v if isinstance(v, str) else torch.as_tensor(v) for k, v in params.items()}
        return item


def composite_folders(root: PathLike) -> dict[str, tuple[Task, ...]]:
    """The composite folders of a test set: ``{"blur+noise": (blur, noise), ...}`` (sorted by name).

    A composite folder's name is two or more task names, letters or aliases joined by ``+`` (as
    :func:`build_testset` writes them); other folders are not composites.
    """
    out: dict[str, tuple[Task, ...]] = {}
    for d in sorted(Path(root).iterdir()):
        if not d.is_dir() or "+" not in d.name:
            continue
        parts = d.name.split("+")
        try:
            tasks = parse_tasks([_ALIAS_TO_TASK.get(p.lower(), p) for p in parts])
        except (KeyError, ValueError):
            continue
        if len(tasks) >= 2:
            out[d.name] = tasks
    return out


class CompositeFolderDataset(Dataset):
    """Composite pairs of a test set: ``GT/`` beside folders such as ``blur+noise/`` (evaluation only).

    Each composite input went through two or more degradations in order (see
    :func:`build_testset` ``composites=``). Items: ``lq``, ``gt``, ``image`` (stem), ``index``,
    ``composite`` (the folder name, e.g. ``"blur+noise"``), ``tasks`` (the stages' task ids, in
    order) and, when the manifest lists them, ``stages`` (each stage's task and parameters). Items
    carry no single ``task``: :func:`~mio_strategies.harness.evaluate` scores them in a column of their
    own and gives explicit-prompt models the equal mixture of the stages' prompts (or the classifier's
    choice).

    Args:
        root: the test-set folder.
        composites: folder names to read (default: every composite folder found).
        gt_folder: name of the ground-truth folder.

    Raises:
        FileNotFoundError: no ``GT`` folder, no composite folder, or a named one missing.
        ValueError: an image without its GT, or a pair whose sizes differ.

    Example:
        >>> ds = CompositeFolderDataset("out-dis")  # doctest: +SKIP
        >>> ds[0]["composite"], ds[0]["tasks"]  # doctest: +SKIP
        ('blur+noise', (1, 2))
    """

    def __init__(self, root: PathLike, *, composites: Iterable[str] | None = None, gt_folder: str = "GT") -> None:
        root, gt_dir = _dataset_dirs(root, gt_folder)
        found = composite_folders(root)
        if composites is not None:
            wanted = [composites] if isinstance(composites, str) else list(composites)
            missing = [c for c in wanted if c not in found]
            if missing:
                raise FileNotFoundError(f"no composite folder {missing} under {str(root)!r}; found {sorted(found)}")
            found = {c: found[c] for c in wanted}
        if not found:
            raise FileNotFoundError(
                f"no composite folder under {str(root)!r}: expected folders such as 'blur+noise' "
                "(write them with `mio-strategies degrade --composite blur+noise`)"
            )
        gts = _images_by_stem(gt_dir)
        self.manifest = _read_manifest(root)
        stages: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for entry in (self.manifest or {}).get("entries", []):
            if "stages" in entry and "lq" in entry:
                stages[(Path(entry["lq"]).parent.name, entry["image"])] = entry["stages"]
        self._pairs = [
            (name, tuple(t.id for t in tasks), stem, lq, gt)
            for name, tasks in found.items()
            for stem, lq, gt in _folder_pairs(root / name, gts, gt_dir)
        ]
        if not self._pairs:
            raise ValueError(f"no image pairs in the composite folders {sorted(found)} under {str(root)!r}")
        self._stages = stages
        self.root = root
        self.composites = tuple(found)

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        name, ids, stem, lq_path, gt_path = self._pairs[index]
        lq, gt = _read_pair(stem, lq_path, gt_path)
        item: dict[str, Any] = {"lq": lq, "gt": gt, "image": stem, "index": index, "composite": name, "tasks": ids}
        if (name, stem) in self._stages:
            item["stages"] = self._stages[(name, stem)]
        return item


def open_testset(root: PathLike, *, gt_folder: str = "GT") -> Dataset:
    """Every pair of a test-set folder, for evaluation: the single-task folders
    (:class:`PairedFolderDataset`) followed by the composite ones (:class:`CompositeFolderDataset`).

    Raises:
        FileNotFoundError: no such folder, no ``GT`` folder, or neither task nor composite folders.

    Example:
        >>> data = open_testset("out-dis")  # doctest: +SKIP
        >>> evaluate(restorer, data)  # doctest: +SKIP
    """
    from torch.utils.data import ConcatDataset

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"test-set folder {str(root)!r} does not exist")
    composites = composite_folders(root)
    parts: list[Dataset] = []
    if _detect_task_folders(root) or not composites:  # without either, PairedFolderDataset says what is missing
        parts.append(PairedFolderDataset(root, gt_folder=gt_folder))
    if composites:
        parts.append(CompositeFolderDataset(root, gt_folder=gt_folder))
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def read_reference_layout(
    lq_dir: PathLike, gt_dir: PathLike, *, meta_info: PathLike | None = None
) -> list[tuple[int, Path, Path]]:
    """Pairs of the reference implementation's flat layout: ``LQ/<prefix>_<name>`` with ``GT/GT_<name>``.

    The reference stores every degraded crop in one folder, the task written as a file-name prefix
    (``sr_``, ``blur_``, ``noise_``, ``jpeg_``, ``rain_``, ``haze_``, ``dark_``), listed in a
    ``meta_info`` text file. This reads that explicitly: the prefix before the first underscore must
    be a known alias (see ``TASK_ALIASES``), anything else is an error rather than a guess.

    Returns:
        ``[(task_id, lq_path, gt_path), ...]``; use :class:`ReferencePairedDataset` to load them.
    """
    lq_dir, gt_dir = Path(lq_dir), Path(gt_dir)
    for d in (lq_dir, gt_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"folder {str(d)!r} does not exist")
    alias_to_task = {a: get_task(name).id for a, name in _ALIAS_TO_TASK.items()}
    if meta_info is not None:
        names = [Path(line.strip()).name for line in Path(meta_info).read_text().splitlines() if line.strip()]
    else:
        names = sorted(p.name for p in lq_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    pairs = []
    for name in names:
        prefix, sep, rest = name.partition("_")
        if not sep or prefix.lower() not in alias_to_task:
            raise ValueError(
                f"file {name!r} in {str(lq_dir)!r} does not start with a task prefix "
                f"(one of {sorted({a for a in alias_to_task if len(a) > 1})} followed by '_')"
            )
        gt_path = gt_dir / f"GT_{rest}"
        if not gt_path.is_file():
            raise ValueError(f"no ground truth {str(gt_path)!r} for {name!r}")
        pairs.append((alias_to_task[prefix.lower()], lq_dir / name, gt_path))
    if not pairs:
        raise ValueError(f"no degraded images found in {str(lq_dir)!r}")
    return pairs


class ReferencePairedDataset(PairedFolderDataset):
    """Training pairs in the reference implementation's flat layout (see :func:`read_reference_layout`).

    Example:
        >>> ds = ReferencePairedDataset("data/LQ_sub", "data/GT_sub", patch_size=128, augment=True)  # doctest: +SKIP
    """

    def __init__(
        self,
        lq_dir: PathLike,
        gt_dir: PathLike,
        *,
        meta_info: PathLike | None = None,
        tasks: str | Iterable[TaskLike] | None = None,
        patch_size: int | None = 128,
        augment: bool = True,
        seed: int = 0,
    ) -> None:
        if patch_size is not None:
            positive_int("patch_size", patch_size, note=" or None")
        pairs = read_reference_layout(lq_dir, gt_dir, meta_info=meta_info)
        if tasks is not None:
            wanted = {t.id for t in parse_tasks(tasks)}
            pairs = [p for p in pairs if p[0] in wanted]
            if not pairs:
                raise ValueError(f"no pairs of tasks {sorted(wanted)} in {str(lq_dir)!r}")
        self.root = Path(lq_dir)
        self._pairs = [(tid, lq.stem, lq, gt) for tid, lq, gt in pairs]
        self._manifest_params = {}
        self.manifest = None
        self.tasks = tuple(TASKS[t] for t in sorted({p[0] for p in pairs}))
        self.patch_size = patch_size
        self.augment = augment
        self.seed = seed
        self.epoch = 0


