"""Training configuration: a dataclass, YAML presets (the paper's protocol and CPU tiers), overrides."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mio_strategies.curriculum import Curriculum, parse_stages
from mio_strategies.data import SYNTHESES
from mio_strategies.degradations import JPEG_CODECS, STREAMS
from mio_strategies.harness._acceleration import check_compile, check_precision
from mio_strategies.models import backbone_spec
from mio_strategies.protocols import get_protocol
from mio_strategies.utils.validation import choice, finite_float, non_negative_int, positive_int

__all__ = [
    "STRATEGIES",
    "ConfigKeyError",
    "TrainConfig",
    "list_presets",
    "load_config",
    "parse_strategy",
]

#: strategy name -> (sequential?, prompt kind or None)
STRATEGIES: dict[str, tuple[bool, str | None]] = {
    "M": (False, None),
    "S": (True, None),
    "M+EP": (False, "explicit"),
    "S+EP": (True, "explicit"),
    "M+AP": (False, "adaptive"),
    "S+AP": (True, "adaptive"),
}
"""The six strategies of the paper: name -> (sequential learning?, prompt kind: ``None``, ``"explicit"`` or ``"adaptive"``)."""

OPTIMIZERS = ("adam", "adamw")

#: ``profile`` name -> the values it gives to the keys a config does not set itself. ``library``: the
#: library's own choices (the dataclass defaults); ``reference``: the official code's protocol where the
#: library departs from it (docs/reproducing.md, "Reference profile: what differs").
PROFILES: dict[str, dict[str, Any]] = {
    "library": {},
    "reference": {
        "data_implementation": "reference",
        "reset_optimizer_each_stage": True,
        "prompt_init": "reference",
        "eval_weights": "plain",
        "eval_task_source": "classifier",
    },
}
IMPLEMENTATIONS = ("library", "reference")
EVAL_WEIGHTS = ("ema", "plain")
TASK_SOURCES = ("given", "classifier")


def parse_strategy(name: str) -> tuple[bool, str | None]:
    """``(sequential, prompt)`` of a strategy name (``"M"``, ``"S"``, ``"M+EP"``, ``"S+EP"``, ``"M+AP"``, ``"S+AP"``).

    Raises:
        ValueError: an unknown strategy, listing the valid ones.

    Example:
        >>> parse_strategy("S+EP")
        (True, 'explicit')
    """
    if not isinstance(name, str) or name.strip().upper() not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}: valid strategies are {list(STRATEGIES)}")
    return STRATEGIES[name.strip().upper()]


@dataclass
class TrainConfig:
    """Everything one training run needs. Load a named preset with :func:`load_config`.

    Attributes:
        backbone: registry name (see ``list_backbones()``); ``backbone_kwargs`` overrides its options.
        strategy: ``M`` (mixed), ``S`` (sequential), ``+EP`` explicit prompt, ``+AP`` adaptive prompt.
        order: task order of the sequential curriculum (letters or names); its tasks are the
            tasks trained, also for mixed training.
        periods: cosine periods (paper: 10); ``period_iters``: iterations per period.
        batch_size, patch_size: per-process batch and square training patch side.
        optimizer: ``adam`` or ``adamw``; ``lr`` cosine-annealed to ``lr_min`` in every period.
        reset_optimizer_each_stage: zero the optimizer state where new tasks enter (a sequential
            run's stage starts; never for mixed training), as the reference's chained per-stage jobs
            did by starting each stage with a new optimizer.
        reset_optimizer_each_period: zero the optimizer state at every period start (a stronger
            variant; exclusive with ``reset_optimizer_each_stage``).
        ema_decay: decay of the exponential moving average of the weights (0 disables it).
        train_images: a folder of GT images; ``None`` uses the embedded photos.
        preset: degradation preset of the training data (``in``).
        val_every: validate every that many iterations (0: only at the end); ``val_images`` the
            GT images of the validation set (``None``: the training images, at ``val_size``).
        checkpoint_every: save a resumable checkpoint every that many iterations (default 1000; 0: only at
            the end, so that a kill loses the whole run). Every preset sets its own (at most a period).
        seed: initial weights, data, sampler and prompts all derive from it (paired seeds).
        precision: autocast of the forward pass, ``fp32`` (none), ``bf16`` or ``fp16`` (with a gradient
            scaler); weights, optimizer and EMA stay float32. Free on resume (exact within one precision).
        compile: ``false`` (eager) or a ``torch.compile`` mode (``default``, ``reduce-overhead``,
            ``max-autotune``) for the backbone, prompt hooks included.
        channels_last: train in the ``torch.channels_last`` memory format.
        stream: random stream of the noise and rain fields of the default dataset, ``torch`` or
            ``philox`` (``null``: the library's default, ``torch``); see ``docs/gpu.md``.
        synthesis: where the default dataset's degradations run: ``loader`` (in the DataLoader, per item)
            or ``device`` (the loader crops and samples the parameters, the training loop degrades the
            batch on the training device, per task; JPEG only with ``jpeg_codec: diffjpeg``, else in the
            loader); the same batches either way (``docs/gpu.md``). Run-defining (a resume keeps it); needs
            ``data_implementation: library``.
        jpeg_codec: the JPEG codec of the default dataset, ``pillow`` (Pillow's libjpeg, on the CPU, per
            image) or ``diffjpeg`` (the reference's differentiable JPEG model, batched torch; with
            ``synthesis: device`` it runs on the training device); ``null`` (default): the data
            implementation's (``pillow`` for ``library``, ``diffjpeg`` for ``reference``, which refuses
            ``pillow``). Run-defining (a resume keeps it).
        profile: ``library`` (default) or ``reference``: fills the keys below that the config does not
            set with the official code's choices (:data:`PROFILES`): its data path, optimizer restart at
            every stage, its initialisation, evaluation of the plain weights with classifier-picked prompts.
        data_implementation: ``library`` or ``reference`` (``degrade(..., implementation=...)``, the
            default training set's data path; YAML ``data: {implementation: ...}`` or
            ``--set data.implementation=...`` set it too).
        prompt_init: ``library`` (modulators start at zero: the identity) or ``reference`` (PyTorch's
            default init of the modulators and, for SRResNet with prompts, of conv_first/conv_hr/conv_last).
        prompt_maps: a reference-format explicit prompt map file (7 x 128 x 128, ``.npy`` or ``.pt``,
            tasks in the reference's order) used instead of the seeded random maps.
        eval_weights: ``ema`` or ``plain``: the weights validation and ``mio-strategies eval`` use by default.
        eval_task_source: ``given`` or ``classifier``: how ``mio-strategies eval`` picks explicit prompts
            by default.
        balance: how the curriculum sampler fills a batch: ``tasks`` (uniform over the active tasks) or
            ``samples`` (uniform over their samples).
        protocol, protocol_root: train on a benchmark protocol's data (``three-task``, ``five-task``,
            ``cdd11``, ``mio-7``; see :mod:`mio_strategies.protocols`) read from ``protocol_root`` instead
            of synthesizing from ``train_images``; ``mio-strategies train --protocol`` sets both.
    """

    name: str = "run"
    backbone: str = "srresnet"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    strategy: str = "M"
    order: str = "SBNJRHL"
    periods: int = 10
    period_iters: int = 250_000
    batch_size: int = 16
    patch_size: int = 128
    optimizer: str = "adam"
    lr: float = 2e-4
    lr_min: float = 1e-7
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    reset_optimizer_each_period: bool = False
    reset_optimizer_each_stage: bool = False
    ema_decay: float = 0.999
    prompt_size: int = 128
    train_images: str | None = None
    preset: str = "in"
    repeat: int = 1
    num_workers: int = 0
    val_every: int = 0
    val_images: str | None = None
    val_size: int = 128
    checkpoint_every: int = 1000
    log_every: int = 100
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    compile: Any = False
    channels_last: bool = False
    stream: str | None = None
    synthesis: str = "loader"
    jpeg_codec: str | None = None
    profile: str = "library"
    data_implementation: str = "library"
    prompt_init: str = "library"
    prompt_maps: str | None = None
    eval_weights: str = "ema"
    eval_task_source: str = "given"
    balance: str = "tasks"
    protocol: str | None = None
    protocol_root: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every field (types, ranges, names).

        Raises:
            ValueError / TypeError: naming the field, the bad value and what is valid.
        """
        spec = backbone_spec(self.backbone)
        if not isinstance(self.backbone_kwargs, Mapping):
            raise TypeError(f"backbone_kwargs must be a mapping, got {type(self.backbone_kwargs).__name__}")
        spec.kwargs(self.backbone_kwargs)
        self.strategy = self.strategy.strip().upper() if isinstance(self.strategy, str) else self.strategy
        _, prompt = parse_strategy(self.strategy)
        if spec.builtin_prompt is not None and prompt is not None:
            raise ValueError(
                f"backbone {self.backbone!r} already has its own {spec.builtin_prompt} prompt: use strategy "
                f"'M' or 'S' with it, or backbone 'restormer' with {self.strategy!r}"
            )
        if not isinstance(self.order, str):
            raise TypeError(
                f"order must be a string of task letters or names (e.g. 'SBNJRHL' or 'SB|NJ|R|H|L'), got {self.order!r}"
            )
        parse_stages(self.order)  # letters, names, or groups entering together ("SB|NJ|R|H|L")
        for key in ("periods", "period_iters", "batch_size", "patch_size", "repeat", "prompt_size", "val_size"):
            positive_int(key, getattr(self, key))
        if parse_strategy(self.strategy)[0]:  # a sequential run needs one period per stage
            Curriculum(self.order, periods=self.periods, iterations_per_period=self.period_iters)
        for key in ("num_workers", "val_every", "checkpoint_every", "log_every", "seed"):
            non_negative_int(key, getattr(self, key))
        if self.val_size < 19:
            raise ValueError(f"val_size must be >= 19 (a 4-pixel border crop leaves the 11x11 SSIM window), got {self.val_size}")
        choice("optimizer", self.optimizer, OPTIMIZERS)
        for key in ("lr", "lr_min", "weight_decay", "ema_decay"):
            setattr(self, key, finite_float(key, getattr(self, key)))
        if not 0 < self.lr_min <= self.lr:
            raise ValueError(f"need 0 < lr_min <= lr, got lr={self.lr} and lr_min={self.lr_min}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not isinstance(self.betas, (list, tuple)):
            raise TypeError(f"betas must be two numbers in [0, 1), e.g. [0.9, 0.99], got {self.betas!r}")
        betas = tuple(self.betas)
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        choice("preset", self.preset, ("in", "out"), what="degradation preset", plural="presets")
        for key in ("reset_optimizer_each_period", "reset_optimizer_each_stage"):
            if not isinstance(getattr(self, key), bool):
                raise TypeError(f"{key} must be true or false, got {getattr(self, key)!r}")
        if self.reset_optimizer_each_period and self.reset_optimizer_each_stage:
            raise ValueError(
                "reset_optimizer_each_period and reset_optimizer_each_stage are both true: choose one (each_stage "
                "is the reference's chained per-stage jobs; each_period also resets within the all-task periods)"
            )
        _device_name("device", self.device)
        check_precision(self.precision)
        self.compile = check_compile(self.compile)
        if not isinstance(self.channels_last, bool):
            raise TypeError(f"channels_last must be true or false, got {self.channels_last!r}")
        if self.stream is not None and self.stream not in STREAMS:
            raise ValueError(f"stream must be null or one of {list(STREAMS)}, got {self.stream!r}")
        if not isinstance(self.synthesis, str) or self.synthesis not in SYNTHESES:
            raise ValueError(f"synthesis must be one of {list(SYNTHESES)}, got {self.synthesis!r}")
        if self.jpeg_codec is not None:
            choice("jpeg_codec", self.jpeg_codec, JPEG_CODECS, plural="values",
                   note=" (or null: the data implementation's)")
        for key, valid in (("profile", tuple(PROFILES)), ("data_implementation", IMPLEMENTATIONS),
                           ("prompt_init", IMPLEMENTATIONS), ("eval_weights", EVAL_WEIGHTS),
                           ("eval_task_source", TASK_SOURCES)):
            choice(key, getattr(self, key), valid, plural="values")
        if self.prompt_maps is not None:
            if not isinstance(self.prompt_maps, str) or not self.prompt_maps:
                raise TypeError(f"prompt_maps must be a file path (a string) or null, got {self.prompt_maps!r}")
            if parse_strategy(self.strategy)[1] != "explicit":
                raise ValueError(f"prompt_maps is for explicit prompts (strategy M+EP or S+EP), not {self.strategy!r}")
        if self.balance not in ("tasks", "samples"):
            raise ValueError(f"balance must be 'tasks' or 'samples', got {self.balance!r}")
        if self.protocol is not None:
            get_protocol(self.protocol)  # KeyError listing the protocols
            if not isinstance(self.protocol_root, str) or not self.protocol_root:
                raise ValueError(f"protocol {self.protocol!r} needs protocol_root, the folder holding its data "
                                 "(`mio-strategies train --protocol NAME --data ROOT`)")
        elif self.protocol_root is not None:
            raise ValueError("protocol_root is set but protocol is not: set both, or neither")
        reads_pairs = self.protocol is not None and not get_protocol(self.protocol).synthesizes_training_data
        if self.synthesis == "device" and (reads_pairs or self.data_implementation != "library"):
            what = f"protocol {self.protocol!r} reads its degraded images from disk" if reads_pairs else (
                f"data_implementation {self.data_implementation!r} degrades each whole image once and keeps it")
            raise ValueError(f"synthesis 'device' degrades the default dataset's batches on the training device, but "
                             f"{what}: use synthesis 'loader' with it (for the reference's DiffJPEG batched on the "
                             "device: data_implementation 'library' with jpeg_codec 'diffjpeg')")
        if reads_pairs:
            # (data_implementation is not refused: the reference profile sets it, and the stored pairs are the data
            # either way)
            for key in ("stream", "jpeg_codec"):
                if getattr(self, key) is not None:
                    raise ValueError(
                        f"{key} {getattr(self, key)!r} chooses how training images are degraded, but protocol "
                        f"{self.protocol!r} reads its degraded training images from its folders: leave {key} null "
                        "with it (it applies to protocols that synthesize their data, such as mio-7)")
        if self.jpeg_codec == "pillow" and self.data_implementation == "reference":
            raise ValueError("jpeg_codec 'pillow' with data_implementation 'reference', whose JPEG codec is DiffJPEG: "
                             "use data_implementation 'library' for Pillow, or jpeg_codec 'diffjpeg' (or null)")
        if spec.size_multiple > 1 and self.patch_size % spec.size_multiple:
            raise ValueError(
                f"patch_size {self.patch_size} is not a multiple of {spec.size_multiple}, which backbone "
                f"{self.backbone!r} needs"
            )

    # -- derived ---------------------------------------------------------------------------------
    @property
    def sequential(self) -> bool:
        """True for the sequential strategies (``S``, ``S+EP``, ``S+AP``)."""
        return parse_strategy(self.strategy)[0]

    @property
    def prompt(self) -> str | None:
        """``"explicit"``, ``"adaptive"`` or None (a backbone's built-in prompt counts)."""
        return parse_strategy(self.strategy)[1] or backbone_spec(self.backbone).builtin_prompt

    @property
    def strategy_prompt(self) -> str | None:
        """The prompt the strategy adds (``"explicit"``, ``"adaptive"`` or None), built-ins excluded."""
        return parse_strategy(self.strategy)[1]

    @property
    def order_tasks(self) -> tuple[Any, ...]:
        """The tasks of ``order`` (:class:`~mio_strategies.tasks.Task`), in curriculum order (groups flattened)."""
        return tuple(t for stage in parse_stages(self.order) for t in stage)

    @property
    def total_iters(self) -> int:
        """Iterations of the whole run (``periods * period_iters``), the same for M and S."""
        return self.periods * self.period_iters

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples), safe for YAML, JSON and ``weights_only`` checkpoints."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        out["backbone_kwargs"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.backbone_kwargs.items()}
        return out

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed (unknown keys refused with a suggestion)."""
        return _from_mapping({**self.to_dict(), **_check_keys(changes)})


def _device_name(key: str, v: Any) -> None:
    if not isinstance(v, str) or not (v in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", v)):
        raise ValueError(f"{key} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {v!r}")


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


class ConfigKeyError(KeyError):
    """An unknown configuration key. A :class:`KeyError` whose message prints as written (``str`` of a plain
    KeyError wraps it in quotes)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _check_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    for key in data:
        if key not in _FIELDS:
            choice("key", key, sorted(_FIELDS), what="config key", plural="keys", error=ConfigKeyError)
    return dict(data)


def _nested_data_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data: {implementation: x}`` (YAML) or ``data.implementation`` (an override) as ``data_implementation``."""
    out = dict(data)
    nested = out.pop("data", None)
    if nested is not None:
        if not isinstance(nested, Mapping) or set(nested) - {"implementation"}:
            raise ConfigKeyError(f"config key 'data' must be a mapping with the key 'implementation' only, got {nested!r}")
        if "implementation" in nested:
            out["data_implementation"] = nested["implementation"]
    if "data.implementation" in out:
        out["data_implementation"] = out.pop("data.implementation")
    return out


def _with_profile(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with its profile's values for the keys it does not set."""
    profile = data.get("profile", "library")
    choice("profile", profile, PROFILES)
    return {**PROFILES[profile], **data}


def _from_mapping(data: Mapping[str, Any]) -> TrainConfig:
    data = _with_profile(_check_keys(_nested_data_keys(data)))
    if "betas" in data and isinstance(data["betas"], list):
        data["betas"] = tuple(data["betas"])
    if "backbone_kwargs" in data and data["backbone_kwargs"] is None:
        data["backbone_kwargs"] = {}
    return TrainConfig(**data)


# -- presets -------------------------------------------------------------------------------------
def _preset_dir() -> Any:
    return resources.files("mio_strategies.harness").joinpath("configs")


def list_presets() -> list[str]:
    """Names of the shipped configuration presets (``configs/<name>.yaml``).

    Example:
        >>> "srresnet" in list_presets()
        True
    """
    return sorted(p.name[: -len(".yaml")] for p in _preset_dir().iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"cannot parse config {where}: {exc}") from exc
    if data is None or data == {}:
        # an empty file is not "all defaults": those are the paper's full-size, multi-day run
        raise ValueError(
            f"config {where} is empty: write the keys to set (e.g. 'base: cpu_demo' and any changes), or name a "
            f"preset (one of {list_presets()})"
        )
    if not isinstance(data, dict):
        raise ValueError(f"config {where} must be a mapping of keys to values, got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ValueError(f"config {where}: keys must be names, got {bad!r}")
    return data


def _is_file_source(source: str | Path) -> bool:
    return str(source).endswith((".yaml", ".yml")) or Path(source).is_file()


def _source_key(source: str | Path) -> str:
    """What identifies a config source in a ``base:`` chain: a file's resolved path, a preset's name."""
    return str(Path(source).resolve()) if _is_file_source(source) else f"preset {source}"


def _load_source(source: str | Path, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Keys of a preset name or a YAML file, following ``base:`` (a preset or a relative file)."""
    path = Path(source)
    if _is_file_source(source):
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        data = _read_yaml(path.read_text(encoding="utf-8"), repr(str(path)))
        here: Path | None = path.parent
    else:
        name = str(source)
        choice("preset", name, list_presets(), note=" (or give a .yaml file)")
        data = _read_yaml(_preset_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8"), f"preset {name!r}")
        here = None
    base = data.pop("base", None)
    data.pop("description", None)
    data.pop("expected", None)
    if base is not None:
        base_src: str | Path = base
        if here is not None and str(base).endswith((".yaml", ".yml")):
            base_src = here / str(base)
        chain = seen + (_source_key(source),)
        if _source_key(base_src) in chain:
            raise ValueError(
                f"config 'base' chain loops: {' -> '.join(chain + (_source_key(base_src),))}; "
                "a config cannot be its own base, directly or through others"
            )
        merged = _load_source(base_src, chain)
        kw = _merged_backbone_kwargs(merged, data)
        merged.update(data)
        if kw:
            merged["backbone_kwargs"] = kw
        data = merged
    return data


def _merged_backbone_kwargs(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``new``'s backbone options on top of ``base``'s; ``base``'s are dropped when ``new`` names
    another backbone (they were options of that other backbone)."""
    for source in (base, new):
        _check_backbone_kwargs(source.get("backbone_kwargs"))
    same = "backbone" not in new or new["backbone"] == base.get("backbone")
    inherited = (base.get("backbone_kwargs") or {}) if same else {}
    return {**inherited, **(new.get("backbone_kwargs") or {})}


def _check_backbone_kwargs(value: Any) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise TypeError(
            f"backbone_kwargs must be a mapping, got {value!r}: write it as YAML with a space after each colon and "
            "quote it for the shell (--set 'backbone_kwargs={num_feat: 32, num_block: 8}'), or set one option "
            "with --set backbone_kwargs.num_feat=32"
        )


def preset_metadata(name: str) -> dict[str, Any]:
    """The ``description`` and ``expected`` (paper numbers, GPU-hours) blocks of a preset."""
    choice("preset", name, list_presets())
    data = _read_yaml(_preset_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8"), f"preset {name!r}")
    return {"description": data.get("description", ""), "expected": data.get("expected", {})}


def _parse_value(text: str) -> Any:
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:  # YAML 1.1 reads "5e-4" (no dot) as a string
            return float(value)
        except ValueError:
            return value
    return value


def parse_overrides(items: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["key=value", "backbone_kwargs.num_feat=32"]`` -> a nested dict (values parsed as YAML).

    Raises:
        ValueError: an item without ``=``.
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"override {item!r} must look like key=value (e.g. period_iters=1000)")
            key, value = item.split("=", 1)
            pairs.append((key.strip(), _parse_value(value.strip())))
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key == "data.implementation":
            out["data_implementation"] = value
        elif "." in key:
            head, sub = key.split(".", 1)
            if head != "backbone_kwargs":
                raise ConfigKeyError(
                    f"nested override {key!r}: only backbone_kwargs.<option> and data.implementation may be nested"
                )
            out.setdefault("backbone_kwargs", {})[sub] = value
        else:
            if key == "backbone_kwargs":
                _check_backbone_kwargs(value)
                out.setdefault("backbone_kwargs", {}).update(value or {})
            else:
                out[key] = value
    return out


def load_config(
    source: str | Path | Mapping[str, Any] = "srresnet",
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Build a :class:`TrainConfig` from a preset name, a YAML file or a mapping, plus overrides.

    A YAML file may start from a preset with ``base: <preset>``. Overrides are ``key=value`` strings
    (``--set`` on the command line) or a mapping; ``backbone_kwargs.<option>=value`` sets one
    backbone option, on top of the source's options. Overriding ``backbone`` with another backbone
    starts from that backbone's defaults (the source's options belonged to the old one).

    Raises:
        KeyError: an unknown key (the message suggests the closest valid key).
        ValueError: an unknown preset, backbone, strategy, or a bad value.

    Example:
        >>> cfg = load_config("srresnet", ["strategy=S+EP", "period_iters=1000"])
        >>> cfg.strategy, cfg.total_iters
        ('S+EP', 10000)
    """
    data = dict(source) if isinstance(source, Mapping) else _load_source(source)
    over = parse_overrides(overrides)
    kw = _merged_backbone_kwargs(data, over)
    over.pop("backbone_kwargs", None)
    data.update(over)
    data["backbone_kwargs"] = kw
    return _from_mapping(data)
