import pytest
import torch
from torch.utils.data import DataLoader

from mio_strategies.data import MiODataset, embedded_image_paths, mio_collate
from mio_strategies.tasks import UnknownTaskError


@pytest.fixture(scope="module")
def paths():
    return embedded_image_paths()[:3]


def test_index_layout_and_task_ids(paths):
    ds = MiODataset(paths, tasks="SNL", patch_size=32, repeat=2)
    assert len(ds) == 3 * 3 * 2
    assert ds.task_ids.tolist() == [0, 2, 6] * 6
    item = ds[4]
    assert item["task"] == 2 and item["image"] == ds.names[1]
    assert item["lq"].shape == item["gt"].shape == (3, 32, 32)
    assert set(item["params"]) and all(v.ndim == 0 for v in item["params"].values())


def test_items_are_a_function_of_seed_epoch_and_index(paths):
    a = MiODataset(paths, tasks="SBNJRHL", patch_size=32, seed=3)
    b = MiODataset(paths, tasks="SBNJRHL", patch_size=32, seed=3)
    for i in (0, 5, 13):
        x, y = a[i], b[i]
        assert torch.equal(x["lq"], y["lq"]) and torch.equal(x["gt"], y["gt"])
    c = MiODataset(paths, tasks="SBNJRHL", patch_size=32, seed=4)
    assert not torch.equal(a[2]["gt"], c[2]["gt"])
    b.set_epoch(1)
    assert not torch.equal(a[2]["gt"], b[2]["gt"])


def test_returned_params_replay_the_degradation(paths):
    from mio_strategies.degradations import degrade

    ds = MiODataset(paths, patch_size=32, seed=1)
    for i in range(7):
        item = ds[i]
        params = {k: v.unsqueeze(0) for k, v in item["params"].items()}
        lq, _ = degrade(item["gt"].unsqueeze(0), item["task"], params=params)
        assert torch.equal(lq[0], item["lq"]), item["task"]


def test_identical_output_with_zero_or_two_workers(paths):
    ds = MiODataset(paths, tasks="SNJR", patch_size=32, seed=5)
    batches = []
    for workers in (0, 2):
        dl = DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=mio_collate)
        batches.append([b["lq"] for b in dl])
    assert len(batches[0]) == 3
    for x, y in zip(*batches):
        assert torch.equal(x, y)


def test_collate_keeps_task_specific_params_per_sample(paths):
    ds = MiODataset(paths, tasks="SN", patch_size=16)
    batch = mio_collate([ds[0], ds[1]])
    assert batch["task"].tolist() == [0, 2]
    assert isinstance(batch["params"], list) and set(batch["params"][0]) != set(batch["params"][1])


def test_gt_tensors_are_accepted_and_validated():
    img = torch.rand(3, 40, 40)
    ds = MiODataset([img], tasks="B", patch_size=32)
    assert ds[0]["gt"].shape == (3, 32, 32)
    with pytest.raises(ValueError, match=r"image tensor 0 has values in .*scale it to \[0, 1\]"):
        MiODataset([img * 2], tasks="B")
    with pytest.raises(ValueError, match=r"float \(3, H, W\) tensor.*shape \(40, 40\)"):
        MiODataset([img[0]], tasks="B")


def test_bad_arguments_are_refused_with_the_fix(paths):
    with pytest.raises(ValueError, match=r"smaller than patch_size=300.*astronaut \(256x256\)"):
        MiODataset(paths, patch_size=300)
    with pytest.raises(UnknownTaskError, match="snow"):
        MiODataset(paths, tasks=["snow"])
    with pytest.raises(ValueError, match="unknown preset 'mid'"):
        MiODataset(paths, preset="mid")
    with pytest.raises(ValueError, match="patch_size must be a positive integer, got 0"):
        MiODataset(paths, patch_size=0)
    with pytest.raises(ValueError, match="empty image list"):
        MiODataset([])
    with pytest.raises(IndexError, match="out of range"):
        MiODataset(paths, tasks="S")[3]
