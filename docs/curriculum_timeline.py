"""Draw docs/curriculum_timeline.png: the paper's two orders and the mixed baseline, with Curriculum.plot().

Run from the repository root:  python docs/curriculum_timeline.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from mio_strategies.curriculum import Curriculum

OUT = Path(__file__).with_name("curriculum_timeline.png")


def main() -> Path:
    panels = [
        (Curriculum("SBNJRHL", periods=10, iterations_per_period=250_000),
         "SRResNet / SwinIR order SBNJRHL (SRResNet: 250k per period)"),
        (Curriculum("RJBSNHL", periods=10, iterations_per_period=100_000),
         "U-Net order RJBSNHL (Restormer, Uformer, PromptIR: 100k per period)"),
        (Curriculum.mixed("SBNJRHL", periods=10, iterations_per_period=250_000),
         "Mixed baseline: all tasks from the start, same total"),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 9), constrained_layout=True)
    for ax, (curriculum, title) in zip(axes, panels):
        curriculum.plot(ax, title=title)
    fig.savefig(OUT, dpi=110)
    plt.close(fig)
    return OUT


if __name__ == "__main__":
    print(main())
