"""Prompt learning in BasicSR: a prompted network type, a model that feeds it each batch's tasks, MiO datasets.

:func:`register` adds five names to BasicSR's registries (``train_pipeline`` of
:mod:`~mio_strategies.integrations.basicsr_curriculum` calls it, so that drop-in gives both strategies):

- ``MiOPromptedNet`` (network): any registered BasicSR network with a :class:`~mio_strategies.prompts.PromptInjector`
  attached; its state dict holds the backbone (``model.*``) and the prompt (``injector.*``).
- ``MiOSRResNet`` (network): the paper's SRResNet at scale 1 (basicsr's ``MSRResNet`` has no x1 path).
- ``MiOPromptModel`` (model): BasicSR's ``SRModel`` that calls the network inside
  ``injector.prompt(task=...)`` with the ``task`` ids of each batch (explicit prompts), for training and
  validation alike, on ``net_g`` and ``net_g_ema``. Adaptive prompts need no task: plain ``SRModel`` works.
- ``MiOTrainDataset``: :class:`~mio_strategies.data.MiODataset` (on-the-fly degradations of GT images,
  ``task_ids`` for the curriculum sampler).
- ``MiOTestDataset``: the single-task folders of a test set written by ``build_testset`` / ``mio-strategies
  degrade`` (``task`` from the folder), for validation.

YAML::

    model_type: MiOPromptModel
    network_g:
      type: MiOPromptedNet
      backbone: {type: SwinIR, upscale: 1, img_size: 64, embed_dim: 60, ...}   # any ARCH_REGISTRY type
      prompt: {kind: explicit, size: 128}     # or {kind: adaptive}; explicit: num_tasks, learned, classifier
      targets: [residual_group]               # names / suffixes, {regex: 'body\\.\\d+'}, {type: RSTB}
      # or: scales: [{targets: [...], part: decoder, channels: 48, channel_axis: 1, name: level1}, ...]
      example_input: [1, 3, 64, 64]           # optional: a dry run on zeros of this shape
      embed_dim: 64
      seed: 0                                 # the prompt's initial weights and maps
    datasets:
      train: {type: MiOTrainDataset, dataroot_gt: datasets/DF2K/HR, tasks: SBNJRHL, gt_size: 128,
              curriculum: {order: SBNJRHL, periods: 10}, ...}
      val: {type: MiOTestDataset, dataroot: testsets/in-dis, ...}

In-Dis / Out-Dis inputs have the GT's size (SR is bicubic down and up, as in the paper), so the backbone
runs at ``upscale: 1`` and the options' ``scale`` is 1.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mio_strategies.checkpoints import load_classifier
from mio_strategies.data import MiODataset, PairedFolderDataset, embedded_image_paths
from mio_strategies.models import Restorer, SRResNet, pad_to_multiple
from mio_strategies.prompts import AdaptivePrompt, ExplicitPrompt, PromptedModel, PromptInjector, PromptScale
from mio_strategies.tasks import get_task, parse_tasks
from mio_strategies.utils.basicsr_compat import import_basicsr
from mio_strategies.utils.validation import closest_name, non_negative_int, positive_int

__all__ = ["MiOPromptedNet", "MiOTestDataset", "MiOTrainDataset", "load_basicsr_restorer", "register", "test_pipeline"]

_NET_KEYS = ("backbone", "prompt", "targets", "scales", "channels", "channel_axis", "example_input", "embed_dim", "seed")
_PROMPT_KEYS = {"explicit": ("kind", "num_tasks", "size", "learned", "classifier"), "adaptive": ("kind", "in_channels")}
_SCALE_KEYS = ("targets", "channels", "part", "reduction", "name", "channel_axis")
_EXTRA = "injector._extra_state"
# the dataset options BasicSR itself reads (build_dataloader, parse_options), and the curriculum section
_LOADER_KEYS = ("name", "type", "phase", "scale", "batch_size_per_gpu", "num_worker_per_gpu", "use_shuffle",
                "dataset_enlarge_ratio", "pin_memory", "persistent_workers", "prefetch_mode", "num_prefetch_queue",
                "io_backend", "curriculum")
_TRAIN_KEYS = _LOADER_KEYS + ("dataroot_gt", "tasks", "gt_size", "preset", "seed", "repeat", "use_hflip", "use_rot", "depth_dir")
_TEST_KEYS = _LOADER_KEYS + ("dataroot", "tasks")


def _unknown(given: Mapping[str, Any], valid: tuple[str, ...], where: str) -> None:
    bad = [k for k in given if k not in valid]
    if bad:
        hints = [f"{k!r} (did you mean {m[0]!r}?)" if (m := [closest_name(k, valid)])[0] else repr(k) for k in bad]
        raise KeyError(f"{where}: unknown option(s) {', '.join(hints)}; valid options are {list(valid)}")


def _target_elements(spec: Any, model: nn.Module, where: str) -> list[Any]:
    """YAML targets -> PromptInjector target elements: names stay names, ``{regex: ...}`` compiles,
    ``{type: ClassName}`` is the class of that name among the backbone's modules."""
    items = spec if isinstance(spec, list) else [spec]
    out: list[Any] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Mapping) and len(item) == 1 and "regex" in item:
            out.append(re.compile(str(item["regex"])))
        elif isinstance(item, Mapping) and len(item) == 1 and "type" in item:
            types = {type(m).__name__: type(m) for m in model.modules()}
            if item["type"] not in types:
                close = difflib.get_close_matches(str(item["type"]), list(types), n=3)
                raise ValueError(f"{where}: the backbone has no module of type {item['type']!r}"
                                 + (f" (closest: {close})" if close else f" (its types: {sorted(types)})"))
            out.append(types[item["type"]])
        else:
            raise TypeError(f"{where}: a target is a module name, {{regex: <pattern>}} or {{type: <ClassName>}}, got {item!r}")
    return out


def _prompt_source(spec: Any, seed: int) -> ExplicitPrompt | AdaptivePrompt:
    if not isinstance(spec, Mapping) or spec.get("kind") not in _PROMPT_KEYS:
        raise ValueError(f"network_g.prompt must be a mapping with kind: explicit or kind: adaptive, got {spec!r}")
    _unknown(spec, _PROMPT_KEYS[spec["kind"]], f"network_g.prompt ({spec['kind']})")
    if spec["kind"] == "adaptive":
        return AdaptivePrompt(int(spec.get("in_channels", 3)))
    kw = {k: spec[k] for k in ("num_tasks", "size", "learned") if k in spec}
    source = ExplicitPrompt(**kw, generator=torch.Generator().manual_seed(seed))
    if spec.get("classifier"):
        source.set_classifier(load_classifier(spec["classifier"]))
    return source


class MiOPromptedNet(PromptedModel):
    """A BasicSR network with prompt modulation attached (``network_g: {type: MiOPromptedNet, ...}``).

    Args:
        backbone: the wrapped network's options, as any ``network_g`` (``type`` from BasicSR's
            ``ARCH_REGISTRY``, then its keyword arguments).
        prompt: ``{kind: explicit, num_tasks, size, learned, classifier: <file>}`` or ``{kind: adaptive,
            in_channels}`` (see :class:`~mio_strategies.prompts.ExplicitPrompt`; ``classifier`` is a file
            written by ``mio-strategies train-classifier``, used for inputs without a task).
        targets: as in :meth:`PromptInjector.attach <mio_strategies.prompts.PromptInjector.attach>`; a target is a
            module name or suffix, ``{regex: <pattern>}`` or ``{type: <ClassName>}``.
        channels: as in :meth:`PromptInjector.attach <mio_strategies.prompts.PromptInjector.attach>`.
        channel_axis: as in :meth:`PromptInjector.attach <mio_strategies.prompts.PromptInjector.attach>`.
        scales: a U-Net description instead of ``targets``: a list of mappings with the fields of
            :class:`~mio_strategies.prompts.PromptScale`.
        example_input: a shape such as ``[1, 3, 64, 64]``: a dry run on zeros reads channels the modules
            do not declare.
        embed_dim: width of the prompt vector (64 in the paper).
        seed: the prompt's initial weights and explicit maps (``net_g`` and ``net_g_ema`` are built alike).

    Its state dict stores the injector's configuration as a JSON byte tensor (BasicSR's save and load
    helpers expect tensors only); a strict load checks it against this network's and names the difference.
    A plain backbone's weights (``pretrain_network_g`` saved from the bare network) load into the backbone.
    ``.to(...)`` moves an explicit prompt's task classifier along.

    Raises:
        KeyError: an unknown option (with the closest valid one).
        ValueError / TypeError: a bad prompt, target or backbone option (from the injector's checks).
    """

    def __init__(self, backbone: Mapping[str, Any] | None = None, prompt: Mapping[str, Any] | None = None,
                 targets: Any = None, *,
                 scales: list[Mapping[str, Any]] | None = None, channels: Any = None, channel_axis: Any = None,
                 example_input: list[int] | None = None, embed_dim: int = 64, seed: int = 0, **unknown: Any) -> None:
        _unknown(unknown, _NET_KEYS, "network_g (MiOPromptedNet)")
        for key, value in (("backbone", backbone), ("prompt", prompt)):
            if value is None:
                raise KeyError(f"network_g (MiOPromptedNet) needs {key}: (see docs/prompts.md, Training in BasicSR)")
        if not isinstance(backbone, Mapping) or "type" not in backbone:
            raise ValueError(f"network_g.backbone must be a network's options with a type, got {backbone!r}")
        if (targets is None) == (scales is None):
            raise ValueError("network_g (MiOPromptedNet) needs targets: (one scale) or scales: (a U-Net), not both or neither")
        non_negative_int("network_g.seed", seed)
        source = _prompt_source(prompt, seed)
        net = import_basicsr("archs").build_network(dict(backbone))
        example = None
        if example_input is not None:
            if not isinstance(example_input, (list, tuple)) or not all(isinstance(v, int) and v > 0 for v in example_input):
                raise ValueError(f"network_g.example_input must be a shape such as [1, 3, 64, 64], got {example_input!r}")
            example = torch.zeros(*example_input)
        kw: dict[str, Any] = {"example_input": example, "embed_dim": embed_dim, "generator": torch.Generator().manual_seed(seed)}
        if scales is not None:
            if not isinstance(scales, list) or not scales:
                raise ValueError(f"network_g.scales must be a non-empty list of scales, got {scales!r}")
            for key, value in (("channels", channels), ("channel_axis", channel_axis)):
                if value is not None:
                    raise ValueError(f"network_g: with scales:, give {key}: inside each scales entry, not at the top level")
            built = []
            for i, s in enumerate(scales):
                where = f"network_g.scales[{i}]"
                if not isinstance(s, Mapping) or "targets" not in s:
                    raise ValueError(f"{where} must be a mapping with targets:, got {s!r}")
                _unknown(s, _SCALE_KEYS, where)
                options = {k: v for k, v in s.items() if k != "targets"}
                built.append(PromptScale(_target_elements(s["targets"], net, where), **options))
            injector = PromptInjector.attach(net, source, scales=built, **kw)
        else:
            injector = PromptInjector.attach(net, source, _target_elements(targets, net, "network_g.targets"),
                                             channels=channels, channel_axis=channel_axis, **kw)
        super().__init__(net, injector)

    def restorer(self, size_multiple: int = 1) -> Any:
        """This network as a :class:`~mio_strategies.harness.Restorer` (sharing its modules), for
        :func:`~mio_strategies.harness.evaluate`: per-task PSNR/SSIM tables, the identity baseline,
        composites with the stages' mixed prompt. ``size_multiple``: inputs are padded to it."""
        return Restorer(self.model, self.injector, self.injector.source.kind, size_multiple)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> MiOPromptedNet:
        # .to() / .cuda() / .half() also move the task classifier, which is not a submodule (BasicSR moves
        # the network with model_to_device and never sees the classifier)
        super()._apply(fn, *args, **kwargs)
        classifier = getattr(self.injector.source, "classifier", None)
        if classifier is not None:
            classifier._apply(fn, *args, **kwargs)
        return self

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        state = super().state_dict(*args, **kwargs)
        for key in [k for k in state if k.endswith(_EXTRA)]:
            state[key] = torch.tensor(list(json.dumps(state[key], sort_keys=True).encode()), dtype=torch.uint8)
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load a state dict saved from a MiOPromptedNet (backbone and prompt), or a plain backbone's
        (``pretrain_network_g`` of the bare network: its keys have no ``model.`` / ``injector.`` prefix),
        which goes into the backbone and leaves the prompt as initialised.

        Raises:
            ValueError: with ``strict``, a saved prompt configuration other than this network's (without
                ``strict`` it is not compared: what fits is loaded, as BasicSR's ``strict_load_g: false``
                asks).
        """
        state = dict(state_dict)
        if state and not any(k.startswith(("model.", "injector.")) for k in state):
            if not strict:  # what fits: BasicSR's own size check compared prefixed keys and set nothing aside
                own = self.model.state_dict()
                state = {k: v for k, v in state.items() if k not in own or getattr(v, "shape", None) == own[k].shape}
            return self.model.load_state_dict(state, strict=strict, assign=assign)
        saved = state.get(_EXTRA)
        if isinstance(saved, torch.Tensor):
            saved = json.loads(bytes(saved.tolist()).decode())
            state[_EXTRA] = saved
        if strict and isinstance(saved, Mapping) and saved.get("config") != self.injector.config():
            raise ValueError(
                f"the saved prompt configuration {saved.get('config')} differs from this network's "
                f"{self.injector.config()}: build network_g with the same prompt, targets and embed_dim"
            )
        return super().load_state_dict(state, strict=strict, assign=assign)


def _srresnet_class() -> type:
    class MiOSRResNet(SRResNet):
        """The paper's SRResNet at scale 1 (``mio_strategies.harness``'s ``srresnet``) as a BasicSR network type:
        ``num_in_ch``, ``num_out_ch``, ``num_feat`` (64), ``num_block`` (16); the reference SRResNet_EP's prompt
        placement is ``targets: [{regex: 'body\\.\\d+'}, act_hr, conv_last]``."""

    return MiOSRResNet


class MiOTrainDataset(torch.utils.data.Dataset):
    """BasicSR training set: GT images degraded on the fly by :class:`~mio_strategies.data.MiODataset`.

    Options: ``dataroot_gt`` (a folder of GT images; default the embedded photos), ``tasks`` (letters,
    default ``SBNJRHL``), ``gt_size`` (the patch side), ``preset`` (``in`` / ``out``), ``seed`` (of every crop and
    degradation, default 0), ``repeat`` (crops per image and task in one epoch), ``use_hflip`` /
    ``use_rot`` (flips and transposes, on unless both are false), ``depth_dir`` (haze depth maps).
    Items: ``lq``, ``gt``, ``task`` (id), ``gt_path`` / ``lq_path`` (the image name).

    A new epoch draws other crops and parameters once :meth:`set_epoch` is called: the drop-in
    ``train_pipeline`` of :mod:`~mio_strategies.integrations.basicsr_curriculum` calls it with the sampler's
    epoch; BasicSR's own loop only sets the sampler's.
    """

    def __init__(self, opt: Mapping[str, Any]) -> None:
        self.opt = opt
        _unknown(opt, _TRAIN_KEYS, f"datasets ({opt.get('name', 'MiOTrainDataset')}, MiOTrainDataset)")
        if opt.get("persistent_workers") and int(opt.get("num_worker_per_gpu", 0) or 0) > 0:
            raise ValueError(
                "MiOTrainDataset with persistent_workers: true would draw the same crops and degradations every "
                "epoch (each worker keeps the copy of the dataset made at its start, so set_epoch never reaches "
                "it): set persistent_workers: false"
            )
        root = opt.get("dataroot_gt")
        self.data = MiODataset(
            root if root else embedded_image_paths(),
            opt.get("tasks", "SBNJRHL"),
            patch_size=opt.get("gt_size"),
            preset=opt.get("preset", "in"),
            augment=bool(opt.get("use_hflip", True) or opt.get("use_rot", True)),
            seed=int(opt.get("seed", 0)),
            repeat=int(opt.get("repeat", 1)),
            depth_dir=opt.get("depth_dir"),
        )

    @property
    def task_ids(self) -> torch.Tensor:
        return self.data.task_ids

    def set_epoch(self, epoch: int) -> None:
        self.data.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.data[index]
        return {"lq": item["lq"], "gt": item["gt"], "task": item["task"], "lq_path": item["image"], "gt_path": item["image"]}


class MiOTestDataset(torch.utils.data.Dataset):
    """BasicSR validation set: the single-task folders of a test set (``dataroot``), with each pair's task.

    Options: ``dataroot`` (a folder written by ``build_testset`` / ``mio-strategies degrade``), ``tasks``
    (keep only these, e.g. ``SN``; default all; a task the set lacks is an error). ``lq_path`` is
    ``<task>_<image>``, so BasicSR names the saved images after both. Composite folders are not read
    (their inputs have no single task).
    """

    def __init__(self, opt: Mapping[str, Any]) -> None:
        self.opt = opt
        _unknown(opt, _TEST_KEYS, f"datasets ({opt.get('name', 'MiOTestDataset')}, MiOTestDataset)")
        if not opt.get("dataroot"):
            raise ValueError("MiOTestDataset needs dataroot: a test-set folder (mio-strategies degrade / build_testset)")
        data = PairedFolderDataset(Path(opt["dataroot"]))
        keep = {t.id for t in parse_tasks(opt["tasks"])} if opt.get("tasks") else None
        present = set(data.task_ids.tolist())
        if keep is not None and not keep <= present:
            raise ValueError(
                f"MiOTestDataset: {opt['dataroot']!r} has no folder for task(s) "
                f"{sorted(get_task(t).name for t in keep - present)} (it has {sorted(get_task(t).name for t in present)}): "
                "fix tasks: or build them with mio-strategies degrade"
            )
        self.data = data
        self.indices = [i for i, t in enumerate(data.task_ids.tolist()) if keep is None or t in keep]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.data[self.indices[index]]
        name = f"{get_task(int(item['task'])).name}_{item['image']}"
        return {"lq": item["lq"], "gt": item["gt"], "task": item["task"], "lq_path": name, "gt_path": name}


@contextlib.contextmanager
def _prompted(net: nn.Module, task: Any) -> Iterator[None]:
    """Calls of ``net`` (a MiOPromptedNet, or one wrapped by DDP) inside the block use ``task``'s prompts."""
    bare = net.module if hasattr(net, "module") and isinstance(net.module, MiOPromptedNet) else net
    if not isinstance(bare, MiOPromptedNet):
        raise TypeError(f"model_type MiOPromptModel needs network_g of type MiOPromptedNet, got {type(bare).__name__}")
    source = bare.injector.source
    if not isinstance(source, ExplicitPrompt):  # adaptive: the input is the prompt
        yield
        return
    if task is None:
        if source.classifier is None:
            raise ValueError(
                "network_g's explicit prompt needs each batch's task ids, but the batch has no 'task': use "
                "MiOTrainDataset / MiOTestDataset (or a dataset whose items have a 'task' id), or give "
                "network_g.prompt.classifier: <a file from mio-strategies train-classifier> for inputs without one"
            )
        yield  # the classifier picks each input's prompt
        return
    with bare.injector.prompt(task=task.tolist() if isinstance(task, torch.Tensor) else task):
        yield


def register() -> None:
    """Add ``MiOPromptedNet``, ``MiOSRResNet`` (the paper's x1 SRResNet), ``MiOPromptModel``,
    ``MiOTrainDataset`` and ``MiOTestDataset`` to BasicSR's registries (idempotent)."""
    registry = import_basicsr("utils.registry")
    if "MiOPromptedNet" not in registry.ARCH_REGISTRY:
        registry.ARCH_REGISTRY.register(MiOPromptedNet)
    if "MiOSRResNet" not in registry.ARCH_REGISTRY:
        registry.ARCH_REGISTRY.register(_srresnet_class())
    for cls in (MiOTrainDataset, MiOTestDataset):
        if cls.__name__ not in registry.DATASET_REGISTRY:
            registry.DATASET_REGISTRY.register(cls)
    if "MiOPromptModel" not in registry.MODEL_REGISTRY:
        registry.MODEL_REGISTRY.register(_model_class())


def load_basicsr_restorer(options: str | Path | Mapping[str, Any], weights: str | Path, *,
                          param_key: str = "params_ema", size_multiple: int | None = None) -> Any:
    """A BasicSR-trained MiOPromptedNet as a :class:`~mio_strategies.harness.Restorer` for
    :func:`~mio_strategies.harness.evaluate` (per-task tables, Markdown/CSV/JSON, bar plots).

    Args:
        options: the BasicSR options file (YAML) the network was trained or tested with, its parsed
            mapping, or its ``network_g`` mapping alone.
        weights: a ``net_g_*.pth`` file written by BasicSR (read with ``weights_only=True``).
        param_key: ``params_ema`` (the EMA weights, default) or ``params``.
        size_multiple: pad inputs to multiples of it; default the options' ``val.size_multiple`` (or 1).

    Raises:
        ValueError: options without ``network_g: {type: MiOPromptedNet}``, or ``param_key`` not in the file
            (the message lists the keys it has).

    Example:
        >>> r = load_basicsr_restorer("options/test_SRResNet_SEP.yml", "net_g_latest.pth")  # doctest: +SKIP
        >>> print(format_table([evaluate(r, open_testset("testsets/in-dis"))]))  # doctest: +SKIP
    """
    if not isinstance(options, Mapping):
        ordered_yaml = import_basicsr("utils.options").ordered_yaml
        import yaml

        if not Path(options).is_file():
            raise FileNotFoundError(f"BasicSR options file {str(options)!r} does not exist")
        try:
            options = yaml.load(Path(options).read_text(encoding="utf-8"), Loader=ordered_yaml()[0])
        except yaml.YAMLError as exc:
            raise ValueError(f"cannot parse BasicSR options file {str(options)!r}: {exc}") from None
        if not isinstance(options, Mapping):
            raise ValueError(f"BasicSR options must be a mapping (with network_g), got {type(options).__name__}")
    net_opt = options.get("network_g", options)
    if not isinstance(net_opt, Mapping) or net_opt.get("type") != "MiOPromptedNet":
        got = net_opt.get("type") if isinstance(net_opt, Mapping) else net_opt
        raise ValueError(f"load_basicsr_restorer needs options with network_g type MiOPromptedNet, got {got!r}")
    if size_multiple is None:
        size_multiple = ((options.get("val") or {}) if "network_g" in options else {}).get("size_multiple", 1)
    size_multiple = _size_multiple(size_multiple)
    register()
    if not Path(weights).is_file():
        raise FileNotFoundError(f"BasicSR weights file {str(weights)!r} does not exist")
    try:
        saved = torch.load(Path(weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file, reported by name
        raise ValueError(f"cannot read BasicSR weights {str(weights)!r} ({type(exc).__name__}: {exc})") from None
    if not isinstance(saved, Mapping):
        raise ValueError(f"{str(weights)!r} is not a BasicSR weights file (a dict with {param_key!r}), got "
                         f"{type(saved).__name__}")
    if param_key not in saved:
        raise ValueError(f"{str(weights)!r} has no {param_key!r} weights (it has {sorted(saved)}): pass param_key=...")
    net = import_basicsr("archs").build_network(dict(net_opt))
    try:
        net.load_state_dict(saved[param_key])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ValueError(f"the {param_key!r} weights of {str(weights)!r} do not fit the network_g of the options "
                         f"({str(exc).splitlines()[0]})") from None
    return net.eval().restorer(size_multiple)


def test_pipeline(root_path: str) -> None:
    """BasicSR's ``test_pipeline`` with this module's names registered (drop-in for ``basicsr.test.test_pipeline``):
    evaluates a ``MiOPromptModel`` on ``MiOTestDataset`` sets, each image with its task's prompt.

    Example (your ``test.py``, run as ``python test.py -opt options/test.yml``)::

        import os

        from mio_strategies.integrations.basicsr_prompt import test_pipeline

        if __name__ == "__main__":
            test_pipeline(os.getcwd())
    """
    register()
    import_basicsr("test").test_pipeline(root_path)


def _size_multiple(value: Any) -> int:
    positive_int("val.size_multiple", value)
    return value


def _check_task_sources(opt: Mapping[str, Any]) -> None:
    """An explicit prompt without a classifier needs a task per validation image: refuse, before training
    starts, a validation / test set of BasicSR's own (their items have no task)."""
    prompt = opt["network_g"].get("prompt") or {}
    if prompt.get("kind") != "explicit" or prompt.get("classifier"):
        return
    registry = import_basicsr("utils.registry").DATASET_REGISTRY
    for key, d in (opt.get("datasets") or {}).items():
        if key == "train" or not isinstance(d, Mapping) or d.get("type") not in registry:
            continue
        if registry.get(d["type"]).__module__.startswith("basicsr."):
            raise ValueError(
                f"datasets.{key} ({d['type']}) has no task ids, which network_g's explicit prompt needs for "
                "each image: use type: MiOTestDataset (a test set from mio-strategies degrade), or give "
                "network_g.prompt.classifier: <a file from mio-strategies train-classifier>"
            )


def _model_class() -> type:
    SRModel: Any = import_basicsr("models.sr_model").SRModel  # untyped third-party base class

    class MiOPromptModel(SRModel):
        """BasicSR's SRModel calling a MiOPromptedNet with each batch's task ids (explicit prompts)."""

        lq: torch.Tensor  # set by SRModel.feed_data
        output: torch.Tensor  # set by SRModel.test

        def __init__(self, opt: Any) -> None:
            if opt["network_g"].get("type") != "MiOPromptedNet":
                raise TypeError(
                    f"model_type MiOPromptModel needs network_g type MiOPromptedNet, got {opt['network_g'].get('type')!r}"
                )
            if int(opt.get("num_gpu", 0) or 0) > 1 and not opt.get("dist"):
                raise ValueError(
                    f"MiOPromptModel on num_gpu: {opt['num_gpu']} without a launcher would use DataParallel, whose "
                    "replicas share one prompt injector (and one batch's task ids): launch with torchrun / "
                    "--launcher pytorch (DistributedDataParallel), or train on one GPU"
                )
            self.size_multiple = _size_multiple((opt.get("val") or {}).get("size_multiple", 1))
            _check_task_sources(opt)
            super().__init__(opt)

        def feed_data(self, data: Mapping[str, Any]) -> None:
            super().feed_data(data)
            self.task = data.get("task")

        def optimize_parameters(self, current_iter: int) -> None:
            with _prompted(self.net_g, self.task):
                super().optimize_parameters(current_iter)

        def test(self) -> None:
            net = self.net_g_ema if hasattr(self, "net_g_ema") else self.net_g  # the network SRModel.test runs
            lq = self.lq
            h, w = lq.shape[-2:]
            # backbones that need sizes in multiples (RRDBNet at scale 1: 4; windowed transformers)
            self.lq = pad_to_multiple(lq, self.size_multiple)
            try:
                with _prompted(net, self.task):
                    super().test()
            finally:
                self.lq = lq
            scale = int(self.opt.get("scale", 1))
            self.output = self.output[..., : h * scale, : w * scale]

    return MiOPromptModel
