"""Sequential learning in a plain PyTorch loop: sampler, period-aligned cosine LR, period-start hook, resume.

A tiny restoration-like task: the "dataset" holds random images of the 7 tasks, the model a small conv.
Run:  python examples/curriculum_loop.py [--iterations-per-period 20] [--mixed]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mio_strategies.curriculum import (
    Curriculum,
    CurriculumCallbacks,
    SequentialCurriculumSampler,
    period_cosine_lr,
    reset_optimizer_state,
)


class ToyMiODataset(Dataset):
    """Images of the 7 tasks; exposes ``task_ids`` (what the sampler reads)."""

    def __init__(self, per_task: int = 8, size: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.task_ids = torch.arange(7).repeat_interleave(per_task)
        self.gt = torch.rand(len(self.task_ids), 3, size, size, generator=g)

    def __len__(self) -> int:
        return len(self.task_ids)

    def __getitem__(self, i: int):
        task = int(self.task_ids[i])
        gt = self.gt[i]
        lq = (gt * (1 - 0.1 * task)).clamp(0, 1)  # a stand-in degradation per task
        return lq, gt, task


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations-per-period", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--mixed", action="store_true", help="the mixed baseline instead of sequential learning")
    p.add_argument("--stop-at", type=int, default=None, help="stop early and resume from a checkpoint (demo)")
    args = p.parse_args(argv)

    dataset = ToyMiODataset()
    curriculum = Curriculum("SBNJRHL", periods=10, iterations_per_period=args.iterations_per_period)
    if args.mixed:
        curriculum = curriculum.as_mixed()
    print(curriculum)

    def build():
        torch.manual_seed(0)  # model init only
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
        opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.99))
        sched = period_cosine_lr(opt, curriculum, eta_min=1e-7)
        sampler = SequentialCurriculumSampler(dataset, curriculum, args.batch_size, seed=0)
        hooks = CurriculumCallbacks(curriculum)
        # the reference ran each stage as a new job: a fresh optimizer whenever tasks enter
        hooks.on_stage_start(reset_optimizer_state(opt))
        hooks.on_period_start(lambda e: print(f"period {e.period + 1}: tasks {''.join(t.letter for t in e.active_tasks)}"))
        return model, opt, sched, sampler, hooks

    model, opt, sched, sampler, hooks = build()
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    seen = torch.zeros(curriculum.periods, 7, dtype=torch.int64)
    start, checkpoint = 0, None
    for t, (lq, gt, task) in enumerate(loader, start=start):
        hooks.step(t)
        loss = nn.functional.l1_loss(model(lq) + lq, gt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        seen[curriculum.period_of(t)] += torch.bincount(task, minlength=7)
        if args.stop_at is not None and t + 1 == args.stop_at:
            checkpoint = {
                "model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "sampler": sampler.state_dict(iteration=t + 1), "iteration": t + 1,
            }
            break
    if checkpoint is not None:  # resume in fresh objects, exactly where the run stopped
        model, opt, sched, sampler, hooks = build()
        model.load_state_dict(checkpoint["model"])
        opt.load_state_dict(checkpoint["opt"])
        sched.load_state_dict(checkpoint["sched"])
        sampler.load_state_dict(checkpoint["sampler"])
        loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True)
        for t, (lq, gt, task) in enumerate(loader, start=checkpoint["iteration"]):
            hooks.step(t)
            loss = nn.functional.l1_loss(model(lq) + lq, gt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            seen[curriculum.period_of(t)] += torch.bincount(task, minlength=7)
    print("samples per period (rows) and task S B N J R H L (columns):")
    print(seen)
    return {"seen": seen, "final_loss": loss.item()}


if __name__ == "__main__":
    main()
