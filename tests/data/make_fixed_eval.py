"""Regenerate tests/data/fixed_M_checkpoint.pt and fixed_M_eval.json (run from the repository root).

The checkpoint is a tiny SRResNet (4 channels, 1 block) trained with strategy M for 14 iterations on
the embedded photos; the JSON holds its per-task PSNR/SSIM (and the identity's) on the test set that
``fixed_testset`` builds. ``tests/test_eval_fixed.py`` checks that evaluation still gives these values.
Only regenerate on purpose (a deliberate change of the degradations, metrics or model), and say so in
the commit message.

    python tests/data/make_fixed_eval.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mio_strategies.data import build_testset, embedded_image_paths, open_testset, read_image  # noqa: E402
from mio_strategies.data._io import write_png  # noqa: E402
from mio_strategies.harness import evaluate, load_config, load_restorer, train  # noqa: E402

HERE = Path(__file__).resolve().parent
CONFIG = [
    "backbone=srresnet_tiny", "backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1", "strategy=M",
    "periods=7", "period_iters=2", "batch_size=2", "patch_size=16", "val_size=24", "log_every=0",
    "lr=1e-3", "lr_min=1e-5", "ema_decay=0.9", "seed=7",
]


def fixed_testset(folder: Path) -> Path:
    """2 embedded photos cropped to 40x40, all seven tasks and blur+noise, In-Dis, seed 11."""
    gt = folder / "gt"
    gt.mkdir(parents=True)
    for p in embedded_image_paths()[:2]:
        write_png(read_image(p)[:, :40, :40], gt / p.name)
    build_testset(gt, folder / "testset", tasks="SBNJRHL", composites=["blur+noise"], seed=11)
    return folder / "testset"


def table(res) -> dict:
    return {"per_task": res.per_task(), "average": res.average(),
            "identity_per_task": res.per_task(identity=True), "identity_average": res.average(identity=True)}


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        run = train(load_config("cpu_demo", CONFIG), Path(tmp) / "run", progress=False)
        state = torch.load(run.checkpoint, weights_only=True)
        state.pop("optimizer"), state.pop("history"), state.pop("validation")  # keep the file small
        torch.save(state, HERE / "fixed_M_checkpoint.pt")
        restorer, _, _ = load_restorer(HERE / "fixed_M_checkpoint.pt")
        res = evaluate(restorer, open_testset(fixed_testset(Path(tmp))), name="fixed M")
    (HERE / "fixed_M_eval.json").write_text(json.dumps(table(res), indent=1) + "\n")
    print(json.dumps(table(res)["average"]))


if __name__ == "__main__":
    main()
