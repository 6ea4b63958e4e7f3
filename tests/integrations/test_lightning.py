"""The Lightning integration with a real lightning.Trainer on the CPU: curriculum stages, period-restarted lr,
optimizer resets, exact resume from a Lightning checkpoint, prompts in a LightningModule, DDP on 2 processes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from mio_strategies.curriculum import Curriculum, SequentialCurriculumSampler, period_cosine_lr  # noqa: E402
from mio_strategies.integrations.lightning import CurriculumCallback  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "lightning_train.py"
pytestmark = pytest.mark.usefixtures("one_thread")  # slow: marked in conftest.py


def _example():
    spec = importlib.util.spec_from_file_location("lightning_train", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path, *args):
    return _example().main(["--periods", "8", "--iters", "3", "--root", str(tmp_path), *args])


def test_a_trainer_runs_the_curriculum_stage_by_stage_with_period_restarted_lr(tmp_path):
    res = _run(tmp_path)
    c = Curriculum("SBNJRHL", periods=8, iterations_per_period=3)
    seen = res["seen"]
    assert [s["step"] for s in seen] == list(range(c.total_iterations)) and res["global_step"] == 24
    for s in seen:  # every batch holds only the tasks active at its step: S, then S+B, ..., then all seven
        active = {t.id for t in c.active_tasks(s["step"])}
        assert set(s["tasks"]) <= active
        if len(active) <= 4:  # 4 slots balanced over at most 4 tasks: every active task is in the batch
            assert set(s["tasks"]) == active
    assert {t for s in seen[18:] for t in s["tasks"]} == set(range(7))
    assert res["periods"] == list(range(8))
    # the lr of torch's CosineAnnealingWarmRestarts over each period (what period_cosine_lr gives)
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=2e-4)
    sched = period_cosine_lr(opt, c)
    expected = []
    for _ in range(c.total_iterations):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert [s["lr"] for s in seen] == pytest.approx(expected, rel=1e-12, abs=0)
    # the batches are the curriculum sampler's stream, batch by batch
    ds = _example().MiODataset(_example().embedded_image_paths(), tasks="SBNJRHL", patch_size=24, repeat=4, seed=0)
    stream = list(SequentialCurriculumSampler(ds, c, batch_size=4, seed=0))
    assert [i for s in seen for i in s["index"]] == stream


def test_resume_from_a_lightning_checkpoint_equals_the_uninterrupted_run(tmp_path):
    whole = _run(tmp_path / "a")
    ckpt = tmp_path / "part.ckpt"
    first = _run(tmp_path / "b", "--max-steps", "10", "--save", str(ckpt))  # stops mid-period (period 4 of 8)
    assert first["global_step"] == 10
    state = torch.load(ckpt, weights_only=False)
    assert any(k.startswith("injector.") for k in state["state_dict"])  # the prompt's weights are in the checkpoint
    rest = _run(tmp_path / "c", "--resume", str(ckpt))
    assert [s["step"] for s in rest["seen"]] == list(range(10, 24))
    assert first["seen"] + rest["seen"] == whole["seen"]  # the same batches and lrs
    assert rest["digest"] == whole["digest"]  # bit for bit the same weights
    assert rest["periods"] == [4, 5, 6, 7]  # period 3 began before the interruption


def test_optimizer_state_is_cleared_at_each_stage_start(tmp_path):
    c = Curriculum("SB", periods=3, iterations_per_period=2)
    steps_at_reset = []

    class Probe(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            opt = trainer.optimizers[0]
            steps_at_reset.append(max((int(s["step"]) for s in opt.state.values()), default=0))

    ex = _example()
    cb = CurriculumCallback(c, batch_size=2, reset_optimizer="stage")
    trainer = pl.Trainer(
        accelerator="cpu",
        callbacks=[cb, Probe()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **cb.trainer_settings(),
    )
    trainer.fit(ex.PromptedRestorer(width=4), datamodule=ex.MiOData(cb, "SB", patch_size=16))
    # Adam's step count seen at each step, after the callback ran: reset at steps 0 and 2 (tasks enter), not at 4
    assert steps_at_reset == [0, 1, 0, 1, 2, 3]


def test_the_callback_refuses_a_loader_it_does_not_drive_and_a_foreign_checkpoint(tmp_path):
    ex = _example()
    c = Curriculum("SB", periods=2, iterations_per_period=2)
    cb = CurriculumCallback(c, batch_size=2)

    class PlainData(ex.MiOData):
        def train_dataloader(self):
            return torch.utils.data.DataLoader(self.dataset, batch_size=2, collate_fn=ex.mio_collate)

    trainer = pl.Trainer(
        accelerator="cpu",
        callbacks=[cb],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **cb.trainer_settings(),
    )
    with pytest.raises(RuntimeError, match=r"does not draw from this CurriculumCallback: build it in train_dataloader"):
        trainer.fit(ex.PromptedRestorer(width=4), datamodule=PlainData(cb, "SB", patch_size=16))
    with pytest.raises(ValueError, match=r"drop \['batch_size', 'shuffle'\]"):
        cb.dataloader([], batch_size=3, shuffle=True)
    with pytest.raises(ValueError, match=r"reset_optimizer must be one of"):
        CurriculumCallback(c, batch_size=2, reset_optimizer="epoch")
    other = CurriculumCallback(Curriculum("SB", periods=3, iterations_per_period=2), batch_size=2)
    with pytest.raises(ValueError, match=r"other settings, so resuming would not continue its run: curriculum"):
        other.load_state_dict(cb.state_dict())


@pytest.mark.distributed
def test_ddp_on_two_cpu_processes_shards_the_curriculum(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
    }
    report = tmp_path / "ddp.json"
    res = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--devices",
            "2",
            "--strategy",
            "ddp",
            "--periods",
            "8",
            "--iters",
            "2",
            "--root",
            str(tmp_path),
            "--report",
            str(report),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"ddp.rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and ranks[0]["digest"] == ranks[1]["digest"]  # synchronised
    c = Curriculum("SBNJRHL", periods=8, iterations_per_period=2)
    ex = _example()
    ds = ex.MiODataset(ex.embedded_image_paths(), tasks="SBNJRHL", patch_size=24, repeat=4, seed=0)
    for r, got in enumerate(ranks):
        want = list(SequentialCurriculumSampler(ds, c, batch_size=4, seed=0, rank=r, world_size=2))
        assert [i for s in got["seen"] for i in s["index"]] == want  # each rank its own shard of the global batch
    for a, b in zip(ranks[0]["seen"], ranks[1]["seen"]):
        assert not set(a["index"]) & set(b["index"])
