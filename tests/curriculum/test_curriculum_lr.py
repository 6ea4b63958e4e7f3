"""Period-aligned cosine learning rate and period-start callbacks."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts

from mio_strategies.curriculum import (
    Curriculum,
    CurriculumCallbacks,
    PeriodStart,
    period_cosine_lr,
    reset_optimizer_state,
)


def make_optimizer(lr=2e-4):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=lr, betas=(0.9, 0.99))


def lrs_over_run(curriculum, **kwargs):
    opt = make_optimizer()
    sched = period_cosine_lr(opt, curriculum, **kwargs)
    out = []
    for _ in range(curriculum.total_iterations):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_restarts_at_every_period_from_peak_to_eta_min():
    c = Curriculum("SBN", periods=4, iterations_per_period=50)
    lrs = lrs_over_run(c)
    for start in c.period_starts:
        assert lrs[start] == pytest.approx(2e-4)
        for k in range(50):
            expected = 1e-7 + (2e-4 - 1e-7) * (1 + math.cos(math.pi * k / 50)) / 2
            assert lrs[start + k] == pytest.approx(expected, rel=1e-9)
        assert lrs[start + 49] < 2e-4 * 0.01


def test_built_from_torch_cosine_annealing_warm_restarts():
    sched = period_cosine_lr(make_optimizer(), Curriculum("SB", periods=2, iterations_per_period=7))
    assert isinstance(sched, CosineAnnealingWarmRestarts)
    assert (sched.T_0, sched.T_mult, sched.eta_min) == (7, 1, 1e-7)


def test_scheduler_state_resumes_mid_period():
    c = Curriculum("SB", periods=2, iterations_per_period=10)
    full = lrs_over_run(c)
    opt = make_optimizer()
    sched = period_cosine_lr(opt, c)
    for _ in range(13):
        opt.step()
        sched.step()
    state = sched.state_dict()
    opt2 = make_optimizer()
    sched2 = period_cosine_lr(opt2, c)
    sched2.load_state_dict(state)
    opt2.param_groups[0]["lr"] = sched2.get_last_lr()[0]
    assert opt2.param_groups[0]["lr"] == pytest.approx(full[13])


def test_lr_not_above_eta_min_is_refused():
    with pytest.raises(ValueError, match=r"group 0 has lr 1e-08 <= eta_min 1e-07.*paper: lr=2e-4"):
        period_cosine_lr(make_optimizer(lr=1e-8), 10)


@pytest.mark.parametrize(
    "args, exc, msg",
    [
        ((None, 10), TypeError, r"optimizer must be a torch.optim.Optimizer, got NoneType"),
        (("opt", 0), ValueError, r"period length must be a positive int, got 0"),
        (("opt", "SBN"), TypeError, r"curriculum must be a Curriculum or a period length \(int\), got str"),
    ],
)
def test_bad_lr_arguments_are_refused(args, exc, msg):
    opt, length = args
    with pytest.raises(exc, match=msg):
        period_cosine_lr(make_optimizer() if opt == "opt" else opt, length)


def test_callbacks_fire_once_at_each_period_start_with_the_event():
    c = Curriculum("SB|N", periods=4, iterations_per_period=3)
    hooks = CurriculumCallbacks(c)
    periods, stages = [], []
    hooks.on_period_start(periods.append)
    hooks.on_stage_start(stages.append)
    for t in range(c.total_iterations):
        hooks.step(t)
        hooks.step(t)  # repeated calls do not fire twice
    assert [e.period for e in periods] == [0, 1, 2, 3]
    assert [e.iteration for e in periods] == [0, 3, 6, 9]
    assert [e.period for e in stages] == [0, 1]
    assert periods[1] == PeriodStart(1, 3, c.active_tasks(3), c.new_tasks(1))
    assert [t.letter for t in periods[1].new_tasks] == ["N"]


def test_resumed_mid_period_fires_only_from_the_next_period():
    c = Curriculum("SB", periods=3, iterations_per_period=4)
    hooks = CurriculumCallbacks(c)
    seen = []
    hooks.on_period_start(lambda e: seen.append(e.period))
    for t in range(5, c.total_iterations):
        hooks.step(t)
    assert seen == [2]


def test_removed_callback_no_longer_fires_and_remove_is_idempotent():
    c = Curriculum("SB", periods=2, iterations_per_period=2)
    hooks = CurriculumCallbacks(c)
    seen = []
    handle = hooks.on_period_start(lambda e: seen.append(e.period))
    hooks.step(0)
    handle.remove()
    handle.remove()
    hooks.step(2)
    assert seen == [0]


def test_reset_optimizer_state_at_stage_start_clears_adam_moments_only():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=1e-3)
    c = Curriculum("SB", periods=2, iterations_per_period=2)
    hooks = CurriculumCallbacks(c)
    hooks.on_stage_start(reset_optimizer_state(opt))
    sizes = []
    for t in range(c.total_iterations):
        hooks.step(t)
        sizes.append(len(opt.state))
        p.grad = torch.ones(3)
        opt.step()
    assert sizes == [0, 1, 0, 1]
    assert opt.param_groups[0]["lr"] == 1e-3


def test_non_callable_callback_is_refused():
    with pytest.raises(TypeError, match=r"callback must be callable \(taking a PeriodStart\), got int 3"):
        CurriculumCallbacks(Curriculum("S", periods=1, iterations_per_period=1)).on_period_start(3)
