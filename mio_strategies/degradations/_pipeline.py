"""Two or more degradations applied in sequence (composite, "unknown-like" inputs), replayable."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from mio_strategies.tasks import Task, TaskLike, get_task, parse_tasks

from ._api import _check_batch_size, _check_generator, _dispatch, sample_params
from ._depth import DepthLike
from ._specs import check_codec, check_preset, check_stream, resolve_ranges
from ._validation import check_images, check_params

__all__ = ["DegradationPipeline", "degrade_sequence"]


class DegradationPipeline:
    """A fixed sequence of degradations, each rounded to 8 bits before the next (e.g. blur, then noise, then JPEG).

    Parameters are sampled per stage from one explicit generator, in stage order; the returned list of
    per-stage params replays the whole sequence bit-exactly. A task may appear more than once.

    Args:
        tasks: letters (``"BNJ"``), names (``"blur,noise"``) or an iterable of names/letters/ids.
        preset: ``"in"`` or ``"out"``: the ranges every stage samples from.
        ranges: optional ``{task: {param: (lo, hi)}}`` overrides (applied to every stage of that task).
        stream: random stream of the noise and rain stages' fields when sampling (see
            :func:`sample_params`; ``None``: the default).
        codec: JPEG codec of the JPEG stages when sampling, ``"pillow"`` or ``"diffjpeg"`` (see
            :func:`sample_params`; ``None``: Pillow, the library's).

    Raises:
        UnknownTaskError: an unknown task. ValueError: empty sequence, unknown preset, stream or codec, bad
            ranges.

    Example:
        >>> pipe = DegradationPipeline("BNJ")
        >>> x = torch.rand(2, 3, 32, 32)
        >>> y, params = pipe(x, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(pipe(x, params=params)[0], y), [sorted(p) for p in params][0]
        (True, ['kernel_size', 'sigma'])
    """

    def __init__(
        self,
        tasks: str | Iterable[TaskLike],
        *,
        preset: str = "in",
        ranges: Mapping[TaskLike, Mapping[str, tuple[float, float]]] | None = None,
        stream: str | None = None,
        codec: str | None = None,
    ) -> None:
        self.stream = check_stream(stream)
        self.codec = check_codec(codec)
        self.tasks: tuple[Task, ...] = parse_tasks(tasks, allow_duplicates=True)
        self.preset = check_preset(preset)
        self.ranges: dict[str, dict[str, tuple[float, float]]] = {}
        if ranges is not None:
            if not isinstance(ranges, Mapping):
                raise TypeError(f"ranges must be a dict {{task: {{param: (lo, hi)}}}}, got {type(ranges).__name__}")
            names = {t.name for t in self.tasks}
            for key, rng in ranges.items():
                name = get_task(key).name
                if name not in names:
                    raise ValueError(
                        f"ranges given for task {name!r}, which is not in the sequence {[t.name for t in self.tasks]}"
                    )
                resolve_ranges(name, preset, rng)  # validate now
                self.ranges[name] = dict(rng)
        if any(t.name == "jpeg" for t in self.tasks):  # the codec's own limits on the ranges, now
            sample_params(
                "jpeg",
                1,
                preset=self.preset,
                generator=torch.Generator().manual_seed(0),
                ranges=self.ranges.get("jpeg"),
                codec=self.codec,
            )

    def __repr__(self) -> str:
        seq = "".join(t.letter for t in self.tasks)
        return f"DegradationPipeline({seq!r}, preset={self.preset!r})"

    def __len__(self) -> int:
        return len(self.tasks)

    def sample_params(
        self, batch_size: int, *, generator: torch.Generator | None = None
    ) -> list[dict[str, torch.Tensor]]:
        """One params dict per stage, drawn in stage order from ``generator`` (fresh seed if None)."""
        n = _check_batch_size(batch_size)
        g = _check_generator(generator)
        return [
            sample_params(
                t,
                n,
                preset=self.preset,
                generator=g,
                ranges=self.ranges.get(t.name),
                stream=self.stream,
                codec=self.codec,
            )
            for t in self.tasks
        ]

    def _check_params(self, params: Any, batch: int) -> list[dict[str, torch.Tensor]]:
        if not isinstance(params, Sequence) or isinstance(params, (str, bytes, Mapping)):
            raise TypeError(
                f"params must be a list of {len(self.tasks)} dicts (one per stage), got {type(params).__name__}"
            )
        if len(params) != len(self.tasks):
            raise ValueError(
                f"params has {len(params)} stages but the pipeline has {len(self.tasks)} "
                f"({''.join(t.letter for t in self.tasks)})"
            )
        return [check_params(t.name, p, batch) for t, p in zip(self.tasks, params)]

    def apply(
        self, images: torch.Tensor, params: Sequence[Mapping[str, Any]], *, depth: DepthLike | None = None
    ) -> torch.Tensor:
        """Apply the stages with explicit per-stage params (all validated before any stage runs)."""
        check_images(images)
        checked = self._check_params(params, images.shape[0])
        return self._run(images, checked, depth)

    def _run(
        self, images: torch.Tensor, params: list[dict[str, torch.Tensor]], depth: DepthLike | None
    ) -> torch.Tensor:
        if depth is not None and not any(t.name == "haze" for t in self.tasks):
            raise ValueError("depth is only used by the 'haze' task, which is not in this pipeline")
        x = images
        for t, p in zip(self.tasks, params):
            x = _dispatch(x, t.name, p, depth if t.name == "haze" else None)
        return x

    def __call__(
        self,
        images: torch.Tensor,
        *,
        params: Sequence[Mapping[str, Any]] | None = None,
        generator: torch.Generator | None = None,
        depth: DepthLike | None = None,
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """Sample (or take) per-stage params and apply them; returns ``(degraded, params_per_stage)``."""
        check_images(images)
        if params is not None:
            if generator is not None:
                raise ValueError("pass either params (to replay) or generator (to sample), not both")
            checked = self._check_params(params, images.shape[0])
        else:
            checked = self.sample_params(images.shape[0], generator=generator)
        return self._run(images, checked, depth), checked


def degrade_sequence(
    images: torch.Tensor,
    tasks: str | Iterable[TaskLike],
    *,
    params: Sequence[Mapping[str, Any]] | None = None,
    preset: str = "in",
    generator: torch.Generator | None = None,
    depth: DepthLike | None = None,
    ranges: Mapping[TaskLike, Mapping[str, tuple[float, float]]] | None = None,
    stream: str | None = None,
    codec: str | None = None,
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Apply several degradations in sequence; functional form of :class:`DegradationPipeline`.

    Args:
        images: ``(B, 3, H, W)`` float tensor in [0, 1].
        tasks: e.g. ``"BNJ"`` or ``["haze", "lowlight"]`` (a task may repeat).
        params: per-stage params to replay (then ``generator`` must be None).
        preset: ``"in"`` or ``"out"``.
        generator: explicit generator; ``None`` draws a fresh seed (the returned params still replay).
        depth: depth map for haze stages.
        ranges: ``{task: {param: (lo, hi)}}`` overrides.
        stream: random stream of noise and rain stages when sampling (see :func:`sample_params`).
        codec: JPEG codec of JPEG stages when sampling (see :func:`sample_params`).

    Returns:
        ``(degraded, params_per_stage)``.

    Example:
        >>> x = torch.rand(1, 3, 32, 32)
        >>> y, p = degrade_sequence(x, "HL", generator=torch.Generator().manual_seed(1))
        >>> len(p), torch.equal(degrade_sequence(x, "HL", params=p)[0], y)
        (2, True)
    """
    pipe = DegradationPipeline(tasks, preset=preset, ranges=ranges, stream=stream, codec=codec)
    return pipe(images, params=params, generator=generator, depth=depth)
