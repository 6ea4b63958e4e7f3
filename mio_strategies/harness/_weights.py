"""Slim weights: one set of a finished run's weights with its config and log, for inference and the demo.

A training checkpoint holds the live weights, the EMA, the optimizer's moments and the sampler state
(about 4x the model). :func:`export_weights` keeps the weights that are evaluated (EMA by default), the
config, the training history and the validation curve; :func:`~mio_strategies.harness.load_restorer`
reads the result like any checkpoint. The package ships such files for the demo in
``mio_strategies/harness/weights/`` (``<strategy>.pt``, e.g. ``S_EP.pt``), listed by :func:`shipped_weights`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mio_strategies.checkpoints import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, save_checkpoint, written_by_library
from mio_strategies.harness._config import STRATEGIES
from mio_strategies.harness._train import load_restorer
from mio_strategies.utils.outputs import check_output_file

__all__ = ["WEIGHTS_DIR", "export_weights", "shipped_weights", "weights_file_name", "weights_label"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def weights_file_name(strategy: str) -> str:
    """``"S+EP"`` -> ``"S_EP.pt"``: the file a strategy's weights have in a weights folder."""
    return strategy.replace("+", "_") + ".pt"


def export_weights(checkpoint: str | Path, dest: str | Path, *, ema: bool = True, overwrite: bool = False) -> Path:
    """Write the weights of a finished run's checkpoint, without its optimizer and sampler state.

    Args:
        checkpoint: a harness ``checkpoint.pt`` of a finished run.
        dest: the file to write (atomically).
        ema: keep the EMA weights (what evaluation uses) when the run kept them; else the live weights.
        overwrite: replace an existing ``dest``.

    Returns:
        ``dest``. It loads with ``load_restorer(dest)`` into the same model that
        ``load_restorer(checkpoint, ema=ema)`` gives; it cannot be resumed.

    Raises:
        FileExistsError: ``dest`` is a link or a folder, or exists and ``overwrite`` is false (with it, a
            file the library did not write).
        ValueError: the run is not finished (its weights are not the ones its config describes).
    """
    # a link, a folder, an existing file without overwrite, or with it one the library did not write: refused
    dest = check_output_file(dest, overwrite=overwrite, what="weights file", recognise=written_by_library)
    restorer, cfg, state = load_restorer(checkpoint, ema=ema)
    if not state.get("finished"):
        raise ValueError(
            f"{str(checkpoint)!r} is an unfinished run (iteration {state.get('iteration')} of {cfg.total_iters}): "
            "resume it to the end first (`mio-strategies train --resume`), then export"
        )
    label = weights_label(state, ema)  # an exported file keeps its own label
    slim: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "backbone": state["backbone"],
        "strategy": state["strategy"],
        "config": state["config"],
        "iteration": state["iteration"],
        "finished": True,
        "model": restorer.state_dict(),
        "ema": None,  # the kept weights are "model": loading applies no EMA on top
        "weights": label,
        "history": state.get("history", []),
        "validation": state.get("validation", []),
    }
    return save_checkpoint(slim, dest)


def weights_label(state: dict[str, Any], ema: bool = True) -> str:
    """Which weights ``load_restorer(..., ema=ema)`` gives for a checkpoint: ``"ema"`` or ``"live"``."""
    if state.get("ema") is not None:
        return "ema" if ema else "live"
    return state.get("weights", "live")


def shipped_weights(folder: str | Path | None = None) -> dict[str, Path]:
    """``{strategy: file}`` of the weights in ``folder`` (default: the package's shipped weights).

    A folder holds one file per strategy, named by :func:`weights_file_name` (``M.pt``, ``S_EP.pt``);
    other files are ignored. An empty dict when there are none.
    """
    folder = WEIGHTS_DIR if folder is None else Path(folder)
    return {s: folder / weights_file_name(s) for s in STRATEGIES if (folder / weights_file_name(s)).is_file()}
