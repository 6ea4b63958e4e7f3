"""A real 2-process torch.distributed (gloo) run: ranks default from the process group, shards are disjoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mio_strategies.curriculum import Curriculum, SequentialCurriculumSampler

ROOT = Path(__file__).resolve().parents[2]

WORKER = r"""
import json, sys
import torch
import torch.distributed as dist
from mio_strategies.curriculum import Curriculum, SequentialCurriculumSampler

rank, world, init_file, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
try:
    ids = torch.arange(84) % 7
    c = Curriculum("RJBSNHL", periods=8, iterations_per_period=3)
    s = SequentialCurriculumSampler(ids, c, batch_size=4, seed=9)  # rank / world_size from the process group
    mine = torch.tensor(list(s)).view(-1, 4)
    gathered = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)
    tasks = [sorted({int(ids[i]) for i in row}) for row in mine]
    all_tasks = [None] * world
    dist.all_gather_object(all_tasks, tasks)
    with open(out, "w") as f:
        json.dump({"rank": s.rank, "world_size": s.world_size, "mine": mine.tolist(),
                   "gathered": [g.tolist() for g in gathered], "tasks": all_tasks}, f)
finally:
    dist.destroy_process_group()
"""


@pytest.mark.distributed
def test_two_gloo_processes_draw_disjoint_shards_under_the_same_curriculum(tmp_path):
    if not torch.distributed.is_available():
        pytest.fail("torch.distributed is not available in this torch build")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    init_file = tmp_path / "init"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), "2", str(init_file), str(tmp_path / f"out{r}.json")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for r in range(2)
    ]
    logs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    outs = [json.loads((tmp_path / f"out{r}.json").read_text()) for r in range(2)]

    assert [(o["rank"], o["world_size"]) for o in outs] == [(0, 2), (1, 2)]
    c = Curriculum("RJBSNHL", periods=8, iterations_per_period=3)
    ids = torch.arange(84) % 7
    shard0, shard1 = (torch.tensor(o["mine"]) for o in outs)
    assert shard0.shape == shard1.shape == (c.total_iterations, 4)
    for t in range(c.total_iterations):
        assert not set(shard0[t].tolist()) & set(shard1[t].tolist()), f"ranks overlap at iteration {t}"
        active = {task.id for task in c.active_tasks(t)}
        for o in outs:
            for rank_tasks in o["tasks"]:
                assert set(rank_tasks[t]) <= active
    # what each process gathered is what the other drew, and equals the single-process view of its shard
    assert outs[0]["gathered"] == outs[1]["gathered"] == [outs[0]["mine"], outs[1]["mine"]]
    for r in range(2):
        local = SequentialCurriculumSampler(ids, c, 4, seed=9, rank=r, world_size=2)
        assert torch.equal(torch.tensor(list(local)).view(-1, 4), torch.tensor(outs[r]["mine"]))
