"""S+EP in PyTorch Lightning: the curriculum callback, and an explicit prompt inside a LightningModule.

    python examples/lightning_train.py                                    # one CPU process, seconds
    python examples/lightning_train.py --devices 2 --strategy ddp         # two CPU processes, sharded batches
    python examples/lightning_train.py --max-steps 10 --save part.ckpt    # stop early and save ...
    python examples/lightning_train.py --resume part.ckpt                 # ... and resume where it stopped

The pattern, for any backbone:

1. attach the :class:`~mio_strategies.prompts.PromptInjector` in the module's ``__init__``: it is then a
   submodule, so its parameters are trained and its state is saved in (and restored from) Lightning checkpoints;
2. wrap the forward pass of each step in ``injector.prompt(task=batch["task"])``;
3. build the training loader with ``CurriculumCallback.dataloader`` and the Trainer with its
   ``trainer_settings()``: one epoch per curriculum period.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from mio_strategies import Curriculum, ExplicitPrompt, MiODataset, PromptInjector
from mio_strategies.data import embedded_image_paths, mio_collate
from mio_strategies.integrations.lightning import CurriculumCallback


class PromptedRestorer(pl.LightningModule):
    """A small CNN with explicit prompts on two of its layers, trained with an L1 loss."""

    def __init__(self, width: int = 16, lr: float = 2e-4, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 3, 3, padding=1),
        )
        # 1. attached here: a submodule of the LightningModule (trained, checkpointed, moved to the device with it)
        self.injector = PromptInjector.attach(
            self.net,
            ExplicitPrompt(generator=torch.Generator().manual_seed(seed)),
            targets=["0", "2"],
            generator=torch.Generator().manual_seed(seed + 1),
        )
        self.seen: list[dict[str, Any]] = []  # what each step trained on (for the tests)

    def forward(self, lq: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        with self.injector.prompt(task=task):  # 2. the prompt of the batch, for this forward pass only
            return lq + self.net(lq)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = (self(batch["lq"], batch["task"]) - batch["gt"]).abs().mean()
        self.seen.append(
            {
                "step": self.global_step,
                "tasks": sorted(set(batch["task"].tolist())),
                "index": batch["index"].tolist(),
                "lr": self.trainer.optimizers[0].param_groups[0]["lr"],
            }
        )
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=(0.9, 0.99))


class MiOData(pl.LightningDataModule):
    """The MiO training set of the embedded photos, batched by the curriculum callback."""

    def __init__(self, callback: CurriculumCallback, tasks: str, patch_size: int = 24, seed: int = 0) -> None:
        super().__init__()
        self.callback, self.tasks, self.patch_size, self.seed = callback, tasks, patch_size, seed

    def setup(self, stage: str) -> None:
        self.dataset = MiODataset(
            embedded_image_paths(), tasks=self.tasks, patch_size=self.patch_size, repeat=4, seed=self.seed
        )

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        # 3. built here, after Lightning started its processes: the batches are sharded over them
        return self.callback.dataloader(self.dataset, collate_fn=mio_collate)


def digest(module: nn.Module) -> str:
    """A short hash of a module's weights (equal iff the weights are bit for bit equal)."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        if isinstance(v, torch.Tensor):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="SBNJRHL")
    p.add_argument("--periods", type=int, default=8)
    p.add_argument("--iters", type=int, default=3, help="iterations per period")
    p.add_argument("--batch-size", type=int, default=4, help="per process")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp")
    p.add_argument("--reset-optimizer", choices=("stage", "period", "none"), default="stage")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (to try a resume)")
    p.add_argument("--save", help="save a checkpoint here at the end")
    p.add_argument("--resume", help="resume from this checkpoint")
    p.add_argument("--root", default="lightning_logs", help="Lightning's default_root_dir")
    p.add_argument("--report", help="write what each step trained on and the final weights' digest here (JSON)")
    args = p.parse_args(argv)

    pl.seed_everything(0, verbose=False)
    curriculum = Curriculum(args.tasks, periods=args.periods, iterations_per_period=args.iters)
    callback = CurriculumCallback(
        curriculum,
        batch_size=args.batch_size,
        seed=0,
        reset_optimizer=None if args.reset_optimizer == "none" else args.reset_optimizer,
    )
    model = PromptedRestorer()
    settings = callback.trainer_settings()  # max_steps: the whole curriculum; Lightning's own sampler off
    if args.max_steps > 0:
        settings["max_steps"] = args.max_steps
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy=args.strategy,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=args.root,
        **settings,
    )
    trainer.fit(model, datamodule=MiOData(callback, args.tasks), ckpt_path=args.resume)
    if args.save:
        trainer.save_checkpoint(args.save)
    result = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "global_step": trainer.global_step,
        "digest": digest(model),
        "seen": model.seen,
        "periods": [e.period for e in callback.periods_started],
    }
    if args.report:
        path = Path(args.report)
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        path.write_text(json.dumps(result))
    if trainer.global_rank == 0:
        print(f"{trainer.global_step} steps over {len(result['periods'])} period starts; weights {result['digest']}")
    return result


if __name__ == "__main__":
    main()
