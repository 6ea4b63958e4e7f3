"""Draw `results_bars.png`: the converged tier's per-task PSNR (mean of 3 paired seeds) as grouped bars.

The numbers are read from the tier's table on docs/results/cpu-scale.md, so the figure and the page
cannot disagree: `python docs/figures/results_bars.py` after the table changes.
"""

from __future__ import annotations

import re
from pathlib import Path

from mio_strategies.analysis import plot_psnr_bars

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "results" / "cpu-scale.md"
TASKS = ["sr", "blur", "noise", "jpeg", "rain", "haze", "lowlight"]


def read_table(text: str) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """The identity row and the ``(mean of 3)`` rows of the tier's table, as ``{row: {task: PSNR}}``.

    Args:
        text: the Markdown of the results page.

    Returns:
        ``(models, identity)``.

    Raises:
        ValueError: the page holds no such table.
    """
    section = text.split("## Converged tier, 10 periods", 1)[-1].split("\n## ", 1)[0]
    models, identity = {}, None
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 9:
            continue
        if cells[0] == "identity" and identity is None:
            identity = dict(zip(TASKS, map(float, cells[1:8])))
        match = re.fullmatch(r"(\S+) \(mean of 3\)", cells[0])
        if match:
            models[match.group(1)] = dict(zip(TASKS, map(float, cells[1:8])))
    if identity is None or not models:
        raise ValueError(f"no converged-tier table with an identity row and '(mean of 3)' rows in {PAGE}")
    return models, identity


if __name__ == "__main__":
    models, identity = read_table(PAGE.read_text())
    plot_psnr_bars(models, baseline=identity, path=HERE / "results_bars.png",
                   title="CPU-scale converged tier: PSNR per task, mean of 3 paired seeds")
    print(f"wrote {HERE / 'results_bars.png'}")
