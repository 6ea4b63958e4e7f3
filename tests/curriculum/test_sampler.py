"""SequentialCurriculumSampler: curriculum respected, balance, reproducibility, exact resume, shards, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from torch.utils.data import DataLoader, Dataset

from mio_strategies.curriculum import Curriculum, SequentialCurriculumSampler
from mio_strategies.tasks import UnknownTaskError


def stream(sampler: SequentialCurriculumSampler) -> torch.Tensor:
    """The sampler's whole remaining stream as (iterations, batch_size)."""
    return torch.tensor(list(sampler)).view(-1, sampler.batch_size)


def per_task_ids(counts: dict[int, int], generator=None) -> torch.Tensor:
    ids = torch.cat([torch.full((n,), t) for t, n in counts.items()])
    if generator is not None:
        ids = ids[torch.randperm(ids.numel(), generator=generator)]
    return ids


class TaskDataset(Dataset):
    """A tiny dataset that returns (index, task id) and exposes task_ids."""

    def __init__(self, task_ids: torch.Tensor) -> None:
        self.task_ids = task_ids

    def __len__(self) -> int:
        return len(self.task_ids)

    def __getitem__(self, i: int):
        return i, int(self.task_ids[i])


# ---------------------------------------------------------------- strategies


@st.composite
def setups(draw):
    """A random curriculum, dataset, batch size and world size that the sampler accepts."""
    n_tasks = draw(st.integers(1, 7))
    order = draw(st.permutations(range(7)))[:n_tasks]
    cuts = sorted(draw(st.sets(st.integers(1, n_tasks - 1), max_size=n_tasks - 1))) if n_tasks > 1 else []
    stages = [list(order[a:b]) for a, b in zip([0, *cuts], [*cuts, n_tasks])]
    periods = draw(st.integers(len(stages), len(stages) + 3))
    ipp = draw(st.integers(1, 6))
    batch = draw(st.integers(1, 6))
    world = draw(st.integers(1, 3))
    balance = draw(st.sampled_from(["tasks", "samples"]))
    g = batch * world
    counts = {t: draw(st.integers(g, g + 12)) for t in order}  # large enough for any share of a global batch
    perm_seed = draw(st.integers(0, 2**31))
    ids = per_task_ids(counts, torch.Generator().manual_seed(perm_seed))
    curriculum = Curriculum(stages, periods=periods, iterations_per_period=ipp)
    return curriculum, ids, batch, world, balance


HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYP
@given(setups(), st.integers(0, 2**32))
def test_only_active_tasks_are_ever_drawn(setup, seed):
    curriculum, ids, batch, world, balance = setup
    s = SequentialCurriculumSampler(ids, curriculum, batch, seed=seed, balance=balance, rank=0, world_size=world)
    batches = stream(s)
    assert batches.shape == (curriculum.total_iterations, batch)
    for t, row in enumerate(batches):
        active = {task.id for task in curriculum.active_tasks(t)}
        assert set(ids[row].tolist()) <= active


@HYP
@given(setups(), st.integers(0, 2**32))
def test_task_balance_is_exact_per_global_batch(setup, seed):
    curriculum, ids, batch, world, _ = setup
    shards = [
        stream(SequentialCurriculumSampler(ids, curriculum, batch, seed=seed, rank=r, world_size=world))
        for r in range(world)
    ]
    glob = torch.cat(shards, dim=1)
    for t, row in enumerate(glob):
        active = [task.id for task in curriculum.active_tasks(t)]
        counts = torch.bincount(ids[row], minlength=7)[active]
        assert int(counts.max() - counts.min()) <= 1, (t, counts)


@HYP
@given(setups(), st.integers(0, 2**32))
def test_rank_shards_are_disjoint_and_agree_on_active_tasks(setup, seed):
    curriculum, ids, batch, world, balance = setup
    shards = [
        stream(SequentialCurriculumSampler(ids, curriculum, batch, seed=seed, balance=balance, rank=r, world_size=world))
        for r in range(world)
    ]
    glob = torch.cat(shards, dim=1)
    for t, row in enumerate(glob):
        assert row.unique().numel() == row.numel(), f"repeated index in global batch {t}: {row.tolist()}"
        active = {task.id for task in curriculum.active_tasks(t)}
        for shard in shards:
            assert set(ids[shard[t]].tolist()) <= active


@HYP
@given(setups(), st.integers(0, 2**32), st.data())
def test_resume_at_any_position_equals_uninterrupted_stream(setup, seed, data):
    curriculum, ids, batch, world, balance = setup
    kwargs = dict(seed=seed, balance=balance, rank=data.draw(st.integers(0, world - 1)), world_size=world)
    full = list(SequentialCurriculumSampler(ids, curriculum, batch, **kwargs))
    cut = data.draw(st.integers(0, len(full)))
    first = SequentialCurriculumSampler(ids, curriculum, batch, **kwargs)
    it = iter(first)
    head = [next(it) for _ in range(cut)]
    state = first.state_dict()
    assert state["position"] == cut
    resumed = SequentialCurriculumSampler(ids, curriculum, batch, **kwargs)
    resumed.load_state_dict(state)
    assert len(resumed) == len(full) - cut
    assert head + list(resumed) == full


@HYP
@given(setups(), st.integers(0, 2**32))
def test_same_seed_same_stream_other_seed_another(setup, seed):
    curriculum, ids, batch, world, balance = setup
    make = lambda sd: list(SequentialCurriculumSampler(ids, curriculum, batch, seed=sd, balance=balance, rank=0, world_size=world))  # noqa: E731
    a = make(seed)
    assert a == make(seed)
    # another seed differs unless the run is too short to tell seeds apart
    if len(a) >= 24:
        assert a != make(seed + 1)


def test_uniform_over_samples_option_draws_tasks_in_proportion_to_size():
    counts = {0: 100, 1: 300, 2: 600}
    ids = per_task_ids(counts)
    c = Curriculum.mixed("SBN", periods=1, iterations_per_period=2000)
    drawn = ids[stream(SequentialCurriculumSampler(ids, c, 8, seed=3, balance="samples")).flatten()]
    observed = torch.bincount(drawn, minlength=3)[:3].numpy()
    expected = np.array([0.1, 0.3, 0.6]) * observed.sum()
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_samples_within_a_task_are_uniform():
    ids = per_task_ids({0: 50, 1: 50})
    c = Curriculum.mixed("SB", periods=1, iterations_per_period=3000)
    drawn = stream(SequentialCurriculumSampler(ids, c, 4, seed=11)).flatten()
    observed = torch.bincount(drawn, minlength=100).numpy()
    assert stats.chisquare(observed).pvalue > 1e-3


def test_default_balance_is_uniform_over_tasks_despite_unequal_sizes():
    ids = per_task_ids({0: 20, 1: 2000})
    c = Curriculum.mixed("SB", periods=1, iterations_per_period=50)
    drawn = ids[stream(SequentialCurriculumSampler(ids, c, 6, seed=0)).flatten()]
    assert torch.bincount(drawn).tolist() == [150, 150]


def test_works_as_dataloader_sampler_and_batch_sampler_with_same_batches():
    ids = per_task_ids({0: 10, 1: 10, 2: 10}, torch.Generator().manual_seed(0))
    ds = TaskDataset(ids)
    c = Curriculum("SBN", periods=3, iterations_per_period=4)
    s1 = SequentialCurriculumSampler(ds, c, 5, seed=7)
    s2 = SequentialCurriculumSampler(ds, c, 5, seed=7)
    loader1 = DataLoader(ds, batch_size=5, sampler=s1, drop_last=True)
    loader2 = DataLoader(ds, batch_sampler=s2.batch_sampler())
    assert len(loader1) == len(loader2) == 12
    b1 = [(i.tolist(), t.tolist()) for i, t in loader1]
    b2 = [(i.tolist(), t.tolist()) for i, t in loader2]
    assert b1 == b2 and len(b1) == 12
    for it, (_, tasks) in enumerate(b1):
        assert set(tasks) <= {task.id for task in c.active_tasks(it)}


def test_state_dict_with_training_iteration_resumes_despite_worker_prefetch():
    ids = per_task_ids({0: 40, 1: 40}, torch.Generator().manual_seed(1))
    c = Curriculum("SB", periods=2, iterations_per_period=10)
    full = stream(SequentialCurriculumSampler(ids, c, 4, seed=5))
    s = SequentialCurriculumSampler(ids, c, 4, seed=5)
    # one worker process prefetches 2 batches: after 3 batches used, the sampler has handed out 5
    loader = DataLoader(TaskDataset(ids), batch_size=4, sampler=s, drop_last=True, num_workers=1, prefetch_factor=2)
    it = iter(loader)
    for _ in range(3):
        next(it)
    next(iter(s.indices(0, 1)))  # stateless access does not move the position
    assert s.state_dict()["position"] > 3 * 4  # the sampler itself is ahead of training
    state = s.state_dict(iteration=3)
    del it
    r = SequentialCurriculumSampler(ids, c, 4, seed=5)
    r.load_state_dict(state)
    assert r.iteration == 3
    assert torch.equal(stream(r), full[3:])


def test_batch_sampler_resumes_from_set_iteration():
    ids = per_task_ids({0: 9, 1: 9})
    c = Curriculum("SB", periods=2, iterations_per_period=3)
    full = stream(SequentialCurriculumSampler(ids, c, 3, seed=2))
    s = SequentialCurriculumSampler(ids, c, 3, seed=2)
    s.set_iteration(4)
    assert torch.tensor(list(s.batch_sampler())).equal(full[4:])
    assert len(s) == 0 and list(s) == []


def test_memory_does_not_depend_on_run_length():
    ids = per_task_ids({0: 100, 1: 100})
    short = SequentialCurriculumSampler(ids, Curriculum("SB", periods=2, iterations_per_period=10), 4)
    long = SequentialCurriculumSampler(ids, Curriculum("SB", periods=2, iterations_per_period=10**9), 4)
    size = lambda s: sum(t.numel() * t.element_size() for t in vars(s).values() if isinstance(t, torch.Tensor))  # noqa: E731
    assert size(short) == size(long)
    assert len(long) == 2 * 10**9 * 4
    it = iter(long)
    assert len([next(it) for _ in range(100)]) == 100


def test_accepts_lists_numpy_tensors_and_datasets():
    base = [0, 1, 0, 1, 0, 1, 0, 1]
    c = Curriculum("SB", periods=2, iterations_per_period=3)
    ref = list(SequentialCurriculumSampler(base, c, 2, seed=1))
    for form in (tuple(base), np.array(base), torch.tensor(base, dtype=torch.int32), TaskDataset(torch.tensor(base))):
        assert list(SequentialCurriculumSampler(form, c, 2, seed=1)) == ref


def test_rank_and_world_size_default_to_single_process():
    s = SequentialCurriculumSampler([0, 0], Curriculum("S", periods=1, iterations_per_period=1), 1)
    assert (s.rank, s.world_size) == (0, 1)


# ---------------------------------------------------------------- bad input

C = Curriculum("SBN", periods=3, iterations_per_period=2)
IDS = per_task_ids({0: 8, 1: 8, 2: 8})


def test_curriculum_tasks_missing_from_dataset_are_named():
    with pytest.raises(ValueError, match=r"needs tasks \['noise'\] that the dataset does not contain"):
        SequentialCurriculumSampler(per_task_ids({0: 8, 1: 8}), C, 2)


def test_dataset_tasks_missing_from_curriculum_are_named():
    with pytest.raises(ValueError, match=r"dataset contains tasks \['rain'\] that curriculum 'SBN' never trains"):
        SequentialCurriculumSampler(per_task_ids({0: 8, 1: 8, 2: 8, 4: 3}), C, 2)


@pytest.mark.parametrize("batch", [0, -2])
def test_non_positive_batch_size_is_refused(batch):
    with pytest.raises(ValueError, match=rf"batch_size must be a positive integer, got {batch}"):
        SequentialCurriculumSampler(IDS, C, batch)


def test_empty_dataset_is_refused():
    with pytest.raises(ValueError, match=r"the dataset is empty"):
        SequentialCurriculumSampler(torch.tensor([], dtype=torch.int64), C, 2)


def test_unknown_task_ids_are_refused():
    with pytest.raises(UnknownTaskError, match=r"unknown task ids \[9\]: valid ids are 0..6"):
        SequentialCurriculumSampler(torch.tensor([0, 1, 2, 9]), C, 1)


@pytest.mark.parametrize(
    "ids, exc, msg",
    [
        (torch.zeros(2, 2, dtype=torch.int64), ValueError, r"must be 1-D .* got shape \(2, 2\)"),
        (torch.zeros(4), TypeError, r"integer task ids 0..6, got dtype torch.float32"),
        (["a", "b"], TypeError, r"1-D sequence of int task ids"),
        (torch.utils.data.TensorDataset(torch.zeros(5, 2)), TypeError,
         r"the dataset \(TensorDataset\) has no .task_ids: give the sampler the task id of every index"),
    ],
)
def test_malformed_task_ids_are_refused(ids, exc, msg):
    with pytest.raises(exc, match=msg):
        SequentialCurriculumSampler(ids, C, 1)


def test_task_too_small_for_its_share_of_a_global_batch_is_refused():
    with pytest.raises(ValueError, match=r"task 'sr' has 3 samples but period 1 draws up to 8 .*batch_size 4 x world_size 2"):
        SequentialCurriculumSampler(per_task_ids({0: 3, 1: 8, 2: 8}), C, 4, rank=0, world_size=2)


@pytest.mark.parametrize(
    "kwargs, exc, msg",
    [
        (dict(rank=2, world_size=2), ValueError, r"rank must be in 0..1 for world_size=2, got 2"),
        (dict(world_size=0), ValueError, r"world_size must be an integer >= 1, got 0"),
        (dict(balance="images"), ValueError, r"balance must be one of \('tasks', 'samples'\), got 'images'"),
        (dict(seed=-1), ValueError, r"seed must be in 0..2\*\*64-1, got -1"),
    ],
)
def test_bad_options_are_refused(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        SequentialCurriculumSampler(IDS, C, 2, **kwargs)


def test_curriculum_must_be_a_curriculum():
    with pytest.raises(TypeError, match=r"curriculum must be a Curriculum .* got str"):
        SequentialCurriculumSampler(IDS, "SBN", 2)


def test_state_from_a_different_configuration_is_refused_with_differences():
    state = SequentialCurriculumSampler(IDS, C, 2, seed=1).state_dict()
    other = SequentialCurriculumSampler(IDS, C, 4, seed=2)
    with pytest.raises(ValueError, match=r"different configuration.*batch_size: saved 2, here 4; seed: saved 1, here 2"):
        other.load_state_dict(state)
    assert other.position == 0  # nothing changed


def test_state_from_a_reordered_dataset_is_refused():
    state = SequentialCurriculumSampler(IDS, C, 2).state_dict()
    with pytest.raises(ValueError, match=r"dataset: saved .*checksum"):
        SequentialCurriculumSampler(IDS.flip(0), C, 2).load_state_dict(state)


def test_state_from_another_curriculum_is_refused():
    state = SequentialCurriculumSampler(IDS, C, 2).state_dict()
    with pytest.raises(ValueError, match=r"curriculum: saved \{'stages': \['S', 'B', 'N'\].*here \{'stages': \['SBN'\]"):
        SequentialCurriculumSampler(IDS, C.as_mixed(), 2).load_state_dict(state)


def test_malformed_state_is_refused():
    s = SequentialCurriculumSampler(IDS, C, 2)
    with pytest.raises(KeyError, match=r"lacks keys \['config'\]"):
        s.load_state_dict({"position": 0})
    bad = s.state_dict()
    bad["position"] = 10**6
    with pytest.raises(ValueError, match=r"state position must be an integer in 0..12, got 1000000"):
        s.load_state_dict(bad)
    with pytest.raises(ValueError, match=r"iteration must be an integer in 0..6, got 7"):
        s.set_iteration(7)


@pytest.mark.parametrize("curriculum", [
    Curriculum("SBN", periods=4, iterations_per_period=16),
    Curriculum.mixed("SBN", periods=4, iterations_per_period=16),
], ids=["sequential", "mixed"])
def test_extend_continues_a_finished_run_into_more_periods(curriculum):
    ids = per_task_ids({0: 70, 1: 70, 2: 70})
    longer = Curriculum.from_dict({**curriculum.to_dict(), "periods": 6})
    # batch 64 draws 32 iterations per chunk: 4 x 16 iterations end on a chunk boundary, so the extended
    # run is the longer schedule's run from the start, index for index
    short = SequentialCurriculumSampler(ids, curriculum, 64, seed=3)
    done = stream(short)
    ext = SequentialCurriculumSampler(ids, longer, 64, seed=3)
    ext.load_state_dict(short.state_dict(), extend=True)
    assert ext.iteration == 64
    rest = stream(ext)
    assert rest.shape == (32, 64)
    assert torch.equal(torch.cat([done, rest]), stream(SequentialCurriculumSampler(ids, longer, 64, seed=3)))
    # the added periods train every task
    assert set(ids[rest.flatten()].tolist()) == {0, 1, 2}


def test_extend_off_a_chunk_boundary_differs_only_before_the_saved_end():
    ids = per_task_ids({0: 70, 1: 70, 2: 70})
    c = Curriculum("SBN", periods=3, iterations_per_period=5)  # batch 64: 15 iterations, one partial chunk
    longer = Curriculum("SBN", periods=5, iterations_per_period=5)
    short = SequentialCurriculumSampler(ids, c, 64, seed=0)
    stream(short)
    ext = SequentialCurriculumSampler(ids, longer, 64, seed=0)
    ext.load_state_dict(short.state_dict(), extend=True)
    assert torch.equal(stream(ext), stream(SequentialCurriculumSampler(ids, longer, 64, seed=0))[15:])


def test_extend_refuses_a_shorter_schedule_another_order_or_a_position_past_the_saved_end():
    ids = per_task_ids({0: 70, 1: 70, 2: 70})
    c = Curriculum("SBN", periods=4, iterations_per_period=2)
    state = SequentialCurriculumSampler(ids, c, 2).state_dict(iteration=5)
    for other, pattern in ((Curriculum("SBN", periods=3, iterations_per_period=2), r"'periods': 4.*'periods': 3"),
                           (Curriculum("BSN", periods=6, iterations_per_period=2), r"'stages': \['S', 'B', 'N'\]"),
                           (Curriculum("SBN", periods=6, iterations_per_period=3), r"'iterations_per_period': 2")):
        s = SequentialCurriculumSampler(ids, other, 2)
        with pytest.raises(ValueError, match=r"different configuration.*curriculum: saved .*" + pattern
                           + r".*extend continues only the same curriculum over fewer periods"):
            s.load_state_dict(state, extend=True)
        assert s.position == 0
    # without extend a longer curriculum is another configuration
    longer = SequentialCurriculumSampler(ids, Curriculum("SBN", periods=6, iterations_per_period=2), 2)
    with pytest.raises(ValueError, match=r"curriculum: saved .*'periods': 4.*'periods': 6"):
        longer.load_state_dict(state)
    bad = {**state, "position": 9 * 2}  # the saved run ends at 8 iterations x batch 2 = 16
    with pytest.raises(ValueError, match=r"state position must be an integer in 0..16, got 18"):
        longer.load_state_dict(bad, extend=True)
    longer.load_state_dict(state, extend=True)
    assert longer.iteration == 5
