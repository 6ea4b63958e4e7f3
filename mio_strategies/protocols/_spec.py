"""The shape of a benchmark protocol: plain frozen dataclasses, no behaviour beyond look-ups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from mio_strategies.tasks import Task, get_task, parse_tasks

__all__ = [
    "PAIRINGS",
    "DatasetInfo",
    "Evaluation",
    "Folder",
    "Protocol",
    "ProtocolTask",
    "ReferenceRow",
    "TestSet",
    "TrainPreset",
]

#: How a degraded input is matched to its target, per layout (see ``_pairing``):
#: ``same-name``: ``lq/<stem>.*`` with ``gt/<stem>.*``; ``rain-norain``: ``rain-<k>.*`` with ``norain-<k>.*``;
#: ``haze-id``: ``<id>_<A>_<beta>.*`` (RESIDE) with ``<id>.*``; ``clean``: targets only, the input is
#: synthesized (noise); ``synthesize``: targets only, every task synthesized by the library's degradations.
PAIRINGS: tuple[str, ...] = ("same-name", "rain-norain", "haze-id", "clean", "synthesize")
SPLITS: tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class ProtocolTask:
    """One task of a protocol, and how it maps onto the library's seven task ids.

    Attributes:
        key: the protocol's own name (``"denoise"``, ``"low_haze_snow"``).
        title: for tables.
        components: library task names the degradation is made of (``("lowlight", "haze")``); an
            explicit prompt gets the equal mixture of their prompts.
        slot: the library task whose id items carry as ``task``: what the curriculum sampler groups by
            and what an explicit prompt is picked by when there is one component.
        sigmas: noise levels (8-bit scale) synthesized for this task in training; empty for paired tasks.
    """

    key: str
    title: str
    components: tuple[str, ...]
    slot: str
    sigmas: tuple[int, ...] = ()

    @property
    def slot_task(self) -> Task:
        """The library :class:`~mio_strategies.tasks.Task` of :attr:`slot`."""
        return get_task(self.slot)

    @property
    def component_ids(self) -> tuple[int, ...]:
        """Library task ids of :attr:`components` (repeated ids collapse: snow shares rain's)."""
        return tuple(dict.fromkeys(get_task(c).id for c in self.components))


@dataclass(frozen=True)
class Folder:
    """One folder pair of a layout: where the targets and inputs are, how they pair, how many to expect.

    Attributes:
        key: unique name within the protocol (``"train/derain"``).
        split: ``"train"`` or ``"test"``; paths are relative to that split's root.
        task: the :class:`ProtocolTask` key its pairs belong to (``None``: several, e.g. mio-7's GT pool).
        gt: target folder, relative to the split root.
        lq: input folder (``None`` when inputs are synthesized).
        pairing: one of :data:`PAIRINGS`.
        count: how many pairs (or target images, for synthesized inputs) the full dataset has; ``None``
            when no source read for this library states it (then only pairing is checked).
        count_source: where :attr:`count` comes from.
        dataset: key into :attr:`Protocol.datasets` (where to get it).
        recursive: inputs may sit in sub-folders (RESIDE's ``part1`` .. ``part4``).
        min_side: images smaller than this on either side are reported (training crops need it).
    """

    key: str
    split: str
    task: str | None
    gt: str
    lq: str | None
    pairing: str
    count: int | None
    count_source: str
    dataset: str
    recursive: bool = False
    min_side: int = 1


@dataclass(frozen=True)
class TestSet:
    """One column of the protocol's table.

    Attributes:
        name: column key (``"bsd68-25"``); published rows are keyed by it.
        title: column header (``"BSD68 s=25"``).
        folder: the :class:`Folder` key holding its images.
        task: the :class:`ProtocolTask` key.
        sigma: noise level added to the clean images (denoising test sets), else ``None``.
    """

    name: str
    title: str
    folder: str
    task: str
    sigma: int | None = None


@dataclass(frozen=True)
class Evaluation:
    """How a protocol scores: the conventions published rows used.

    Attributes:
        color: the primary PSNR/SSIM convention, ``"rgb"`` or ``"y"`` (BT.601 luma, as basicsr/MATLAB).
            The table also shows the other one, so rows published either way can be compared.
        border: pixels cropped at each side before scoring.
        crop_multiple: inputs and targets are centre-cropped to a multiple of this before restoring
            (the PromptIR family's ``crop_img(base=16)``); 1 keeps the whole image.
        quantize: score the output rounded to 8 bits (as when restored images are saved as PNG and
            re-read); ``False`` scores the clamped float output (PromptIR's ``compute_psnr_ssim``).
        ssim_window: ``"uniform7"`` (scikit-image's default, 7x7 box, sample covariance), ``"gaussian11"``
            (scikit-image with ``gaussian_weights=True``) or ``"basicsr"`` (11x11 Gaussian on 8-bit levels).
        noise_seed: base seed of the noise added to denoising test images. Each image's noise comes from
            ``(noise_seed, sigma, crc32(file stem))``, so every run, on any file system, scores the same
            inputs; noisy images are clipped to 0..255 and truncated to integers as the published code does.
        note: anything else a reader must know.
    """

    color: str = "rgb"
    border: int = 0
    crop_multiple: int = 1
    quantize: bool = False
    ssim_window: str = "uniform7"
    noise_seed: int = 0
    note: str = ""


@dataclass(frozen=True)
class ReferenceRow:
    """A published row: method, venue, scores per test set, and where they were read.

    Attributes:
        method, venue: as the source prints them.
        source: the document the numbers were read from (a README table or a paper table).
        color: the PSNR convention the row used (``"rgb"`` or ``"y"``).
        scores: ``{test-set name: (psnr, ssim or None)}``.
        average: the published average ``(psnr, ssim or None)``; ``None`` when not published.
        ssim_window: SSIM convention of the row's code, when known.
        note: caveats (e.g. a differing evaluation).
    """

    method: str
    venue: str
    source: str
    color: str
    scores: Mapping[str, tuple[float, float | None]]
    average: tuple[float, float | None] | None = None
    ssim_window: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "scores", MappingProxyType(dict(self.scores)))


@dataclass(frozen=True)
class DatasetInfo:
    """Where a dataset comes from.

    Attributes:
        name: the dataset's usual name.
        urls: download locations named by the protocol's reference code.
        licence: its terms as far as the sources read state them.
        note: what to download and how to place it.
    """

    name: str
    urls: tuple[str, ...]
    licence: str
    note: str = ""


@dataclass(frozen=True)
class TrainPreset:
    """The protocol's default schedule for ``mio-strategies train --protocol``.

    Attributes:
        order: curriculum order of the slots (library letters, ``|`` for groups).
        periods, period_iters: cosine periods and their length.
        batch_size, patch_size, lr, optimizer: as in :class:`~mio_strategies.harness.TrainConfig`.
        balance: the curriculum sampler's ``balance`` (``"tasks"``: uniform over active slots; ``"samples"``:
            uniform over the samples of the active slots).
        rationale: why these values (which paper's budget they follow).
        gpu_hours: an estimate, labelled as such, for a PromptIR-size backbone.
    """

    order: str
    periods: int
    period_iters: int
    batch_size: int
    patch_size: int
    lr: float = 2e-4
    optimizer: str = "adamw"
    balance: str = "tasks"
    rationale: str = ""
    gpu_hours: str = ""

    def overrides(self) -> dict[str, Any]:
        """The preset as :func:`~mio_strategies.harness.load_config` overrides."""
        return {
            "order": self.order, "periods": self.periods, "period_iters": self.period_iters,
            "batch_size": self.batch_size, "patch_size": self.patch_size, "lr": self.lr, "optimizer": self.optimizer,
            "balance": self.balance,
        }


@dataclass(frozen=True)
class Protocol:
    """A benchmark protocol as data: tasks, layout, test sets, evaluation, published rows, preset.

    Attributes:
        name: registry name (``"three-task"``).
        title, description: for listings and docs.
        tasks: the protocol's tasks in its own order.
        folders: the on-disk layout (training and test folders).
        roots: ``{"train": (...), "test": (...)}`` candidate split roots, relative to the user's root;
            the first that exists is used (PromptIR keeps ``data/Train`` beside ``test``, AdaIR puts both
            under ``data/``).
        test_sets: the table's columns, in order.
        evaluation: scoring conventions.
        datasets: ``{key: DatasetInfo}``.
        references: published rows.
        preset: default training schedule.
        layout_source: where the layout is documented.
    """

    name: str
    title: str
    description: str
    tasks: tuple[ProtocolTask, ...]
    folders: tuple[Folder, ...]
    roots: Mapping[str, tuple[str, ...]]
    test_sets: tuple[TestSet, ...]
    evaluation: Evaluation
    datasets: Mapping[str, DatasetInfo]
    references: tuple[ReferenceRow, ...] = ()
    preset: TrainPreset | None = None
    layout_source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "roots", MappingProxyType({k: tuple(v) for k, v in self.roots.items()}))
        object.__setattr__(self, "datasets", MappingProxyType(dict(self.datasets)))
        self._validate()

    def _validate(self) -> None:
        keys = [t.key for t in self.tasks]
        if len(set(keys)) != len(keys):
            raise ValueError(f"protocol {self.name!r}: duplicate task keys {keys}")
        for t in self.tasks:
            t.slot_task  # noqa: B018 - raises for an unknown library task
            for c in t.components:
                get_task(c)
        fkeys = [f.key for f in self.folders]
        if len(set(fkeys)) != len(fkeys):
            raise ValueError(f"protocol {self.name!r}: duplicate folder keys {fkeys}")
        for f in self.folders:
            if f.split not in SPLITS:
                raise ValueError(f"folder {f.key!r}: split must be one of {SPLITS}, got {f.split!r}")
            if f.pairing not in PAIRINGS:
                raise ValueError(f"folder {f.key!r}: pairing must be one of {PAIRINGS}, got {f.pairing!r}")
            if f.task is not None and f.task not in keys:
                raise ValueError(f"folder {f.key!r}: unknown task {f.task!r} (tasks: {keys})")
            if f.dataset not in self.datasets:
                raise ValueError(f"folder {f.key!r}: unknown dataset {f.dataset!r} (datasets: {sorted(self.datasets)})")
            if (f.lq is None) != (f.pairing in ("clean", "synthesize")):
                raise ValueError(f"folder {f.key!r}: pairing {f.pairing!r} and lq={f.lq!r} disagree")
        for s in self.test_sets:
            if s.folder not in fkeys or s.task not in keys:
                raise ValueError(f"test set {s.name!r}: unknown folder {s.folder!r} or task {s.task!r}")
        names = {s.name for s in self.test_sets}
        for r in self.references:
            unknown = set(r.scores) - names
            if unknown:
                raise ValueError(f"reference {r.method!r}: unknown test sets {sorted(unknown)} (columns: {sorted(names)})")

    # -- look-ups ---------------------------------------------------------------------------------
    @property
    def synthesizes_training_data(self) -> bool:
        """Whether the training data are degraded on the fly from GT images (mio-7), rather than read as
        stored pairs (three-task, five-task, cdd11): then the data keys of a run's config (``stream``,
        ``jpeg_codec``) apply to them.

        Example:
            >>> from mio_strategies.protocols import get_protocol
            >>> get_protocol("mio-7").synthesizes_training_data, get_protocol("cdd11").synthesizes_training_data
            (True, False)
        """
        return any(f.pairing == "synthesize" for f in self.folders if f.split == "train")

    def task(self, key: str) -> ProtocolTask:
        """The :class:`ProtocolTask` named ``key``.

        Raises:
            KeyError: an unknown key (lists the protocol's tasks).
        """
        for t in self.tasks:
            if t.key == key:
                return t
        raise KeyError(f"protocol {self.name!r} has no task {key!r}: its tasks are {[t.key for t in self.tasks]}")

    def folder(self, key: str) -> Folder:
        """The :class:`Folder` named ``key``.

        Raises:
            KeyError: an unknown key (lists the protocol's folders).
        """
        for f in self.folders:
            if f.key == key:
                return f
        raise KeyError(f"protocol {self.name!r} has no folder {key!r}: its folders are {[f.key for f in self.folders]}")

    def test_set(self, name: str) -> TestSet:
        """The :class:`TestSet` named ``name``.

        Raises:
            KeyError: an unknown name (lists the protocol's test sets).
        """
        for s in self.test_sets:
            if s.name == name:
                return s
        raise KeyError(f"protocol {self.name!r} has no test set {name!r}: its test sets are "
                       f"{[s.name for s in self.test_sets]}")

    @property
    def slots(self) -> tuple[Task, ...]:
        """The library tasks the protocol's items are labelled with, in the preset's curriculum order."""
        seen = dict.fromkeys(t.slot_task for t in self.tasks)
        if self.preset is None:
            return tuple(seen)
        ordered = parse_tasks(self.preset.order.replace("|", ""))
        return tuple(t for t in ordered if t in seen)

    def expected_counts(self) -> dict[str, int | None]:
        """``{folder key: known count or None}``."""
        return {f.key: f.count for f in self.folders}
