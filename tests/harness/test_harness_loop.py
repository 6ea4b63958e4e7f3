"""The training loop's shared parts (mio_strategies.harness._loop), used by train() and train_packed()."""

from __future__ import annotations

import json

import torch

from mio_strategies.curriculum import SequentialCurriculumSampler
from mio_strategies.harness import load_config
from mio_strategies.harness._loop import (
    ITERATION_SEED_STREAM,
    LOADER_SEED_STREAM,
    LOG_NAME,
    VALIDATION_SEED_STREAM,
    LoopOptions,
    default_validation_set,
    log_record,
    make_curriculum,
    make_loader,
    read_record,
    seed_iteration,
    train_record,
    truncate_log,
    validation_record,
)
from mio_strategies.utils.rng import derive_seed
from tests.tiny_runs import TINY, tiny_data


def test_loop_options_stop_at_stop_after_never_before_the_start_nor_past_the_end():
    assert LoopOptions().stop(start=0, total=10) == 10
    assert LoopOptions(stop_after=3).stop(start=0, total=10) == 3
    assert LoopOptions(stop_after=3).stop(start=5, total=10) == 5  # a resumed run past stop_after stops at once
    assert LoopOptions(stop_after=30).stop(start=0, total=10) == 10


def test_seed_iteration_seeds_the_cpu_generator_from_the_run_seed_rank_and_iteration():
    seed_iteration(7, 1, 12, torch.device("cpu"))
    drawn = torch.rand(4)
    torch.manual_seed(derive_seed(7, ITERATION_SEED_STREAM, 1, 12))
    assert torch.equal(drawn, torch.rand(4))
    seed_iteration(7, 0, 12, torch.device("cpu"))
    other_rank = torch.rand(4)
    seed_iteration(7, 1, 13, torch.device("cpu"))
    other_iteration = torch.rand(4)
    assert not torch.equal(drawn, other_rank) and not torch.equal(drawn, other_iteration)


def test_make_loader_replays_the_samplers_batches_with_the_runs_own_generator():
    cfg = load_config("cpu_demo", TINY + ["strategy=M", "seed=3"])
    data = tiny_data(cfg)

    def batches(rank: int) -> tuple[torch.Generator, list[torch.Tensor]]:
        sampler = SequentialCurriculumSampler(data, make_curriculum(cfg), cfg.batch_size, seed=cfg.seed)
        loader = make_loader(cfg, data, sampler, torch.device("cpu"), rank)
        it = iter(loader)
        return loader.generator, [next(it)["lq"] for _ in range(3)]

    gen, first = batches(0)
    assert gen.initial_seed() == derive_seed(3, LOADER_SEED_STREAM, 0)
    assert batches(2)[0].initial_seed() == derive_seed(3, LOADER_SEED_STREAM, 2)
    _, again = batches(0)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert first[0].shape == (cfg.batch_size, 3, cfg.patch_size, cfg.patch_size)


def test_default_validation_set_draws_from_its_own_stream_of_the_run_seed():
    cfg = load_config("cpu_demo", TINY + ["seed=5"])
    val = default_validation_set(cfg)
    assert val.seed == derive_seed(5, VALIDATION_SEED_STREAM) and val.patch_size == cfg.val_size


def test_records_name_the_iteration_period_and_active_tasks():
    cfg = load_config("cpu_demo", TINY + ["strategy=S", "order=SB", "periods=2"])
    cur = make_curriculum(cfg)
    assert train_record(1, 0.5, 1e-3, 0, cfg, cur) == {
        "iteration": 1,
        "loss": 0.5,
        "lr": 1e-3,
        "period": 1,
        "tasks": "S",
    }
    assert train_record(4, 0.25, 1e-4, 3, cfg, cur)["period"] == 2
    assert train_record(4, 0.25, 1e-4, 3, cfg, cur)["tasks"] == "SB"

    class Result:
        def per_task(self):
            return {"sr": {"psnr": 20.0, "ssim": 0.5}, "blur": {"psnr": 30.0, "ssim": 0.9}}

        def average(self):
            return {"psnr": 25.0, "ssim": 0.7}

    assert validation_record(6, Result()) == {"iteration": 6, "psnr": {"sr": 20.0, "blur": 30.0}, "average": 25.0}


def test_truncate_log_drops_later_records_and_cut_lines(tmp_path):
    for i in (1, 2, 3):
        log_record(tmp_path, {"kind": "train", "iteration": i})
    with (tmp_path / LOG_NAME).open("a", encoding="utf-8") as fh:
        fh.write('{"kind": "train", "itera')  # a write cut by a crash
    assert read_record('{"kind": "train", "itera') is None and read_record("[1, 2]") is None
    truncate_log(tmp_path, 2)
    lines = (tmp_path / LOG_NAME).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [1, 2]
    truncate_log(tmp_path / "absent", 2)  # no log yet: nothing to do
