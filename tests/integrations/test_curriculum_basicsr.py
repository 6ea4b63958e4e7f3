"""The curriculum inside BasicSR 1.4.2: a YAML option, BasicSR's own train pipeline, its epoch loop."""

from __future__ import annotations

import re
import sys

import pytest
import torch
import yaml

from mio_strategies.curriculum import Curriculum, SequentialCurriculumSampler
from mio_strategies.utils.basicsr_compat import import_basicsr

pytestmark = pytest.mark.basicsr

LOADED: list[int] = []  # indices the train dataset served, in order
TASK_IDS = torch.arange(42) % 7  # 6 samples per task


def _register_dataset():
    registry = import_basicsr("utils.registry").DATASET_REGISTRY
    name = "MioCurriculumTestDataset"
    if name in registry:
        return name

    class MioCurriculumTestDataset(torch.utils.data.Dataset):
        """8x8 GT, 4x4 LQ; records every index it serves."""

        def __init__(self, opt):
            self.opt = opt
            self.task_ids = TASK_IDS

        def __len__(self):
            return len(self.task_ids)

        def __getitem__(self, i):
            LOADED.append(int(i))
            g = torch.Generator().manual_seed(int(i))
            gt = torch.rand(3, 8, 8, generator=g)
            return {"lq": gt[:, ::2, ::2].contiguous(), "gt": gt}

    MioCurriculumTestDataset.__name__ = name
    registry.register(MioCurriculumTestDataset)
    return name


def _options(tmp_path, *, curriculum, total_iter=14, scheduler_periods=None):
    periods = curriculum.get("periods", 7) if curriculum else 7
    return {
        "name": "mio_curriculum_test",
        "model_type": "SRModel",
        "scale": 2,
        "num_gpu": 0,
        "manual_seed": 3,
        "datasets": {
            "train": {
                "name": "tiny",
                "type": _register_dataset(),
                "phase": "train",
                "scale": 2,
                "num_worker_per_gpu": 0,
                "batch_size_per_gpu": 3,
                "dataset_enlarge_ratio": 1,
                "prefetch_mode": None,
                **({"curriculum": curriculum} if curriculum else {}),
            }
        },
        "network_g": {"type": "MSRResNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 4, "num_block": 1, "upscale": 2},
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": {
            "ema_decay": 0,
            "optim_g": {"type": "Adam", "lr": 2e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {
                "type": "CosineAnnealingRestartLR",
                "periods": scheduler_periods or [total_iter // periods] * periods,
                "restart_weights": [1] * periods,
                "eta_min": 1e-7,
            },
            "total_iter": total_iter,
            "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "logger": {"print_freq": 1000, "save_checkpoint_freq": 1000, "use_tb_logger": False, "wandb": {"project": None}},
        "dist_params": {"backend": "nccl", "port": 29500},
    }


def _run_basicsr(tmp_path, monkeypatch, opt):
    from mio_strategies.integrations.basicsr_curriculum import train_pipeline

    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(opt))
    monkeypatch.setattr(sys, "argv", ["train.py", "-opt", str(path)])
    LOADED.clear()
    train_pipeline(str(tmp_path))
    return list(LOADED)


def test_basicsr_train_pipeline_feeds_the_curriculum_stream(tmp_path, monkeypatch):
    opt = _options(tmp_path, curriculum={"order": "RJBSNHL", "periods": 7, "seed": 5})
    loaded = _run_basicsr(tmp_path, monkeypatch, opt)
    c = Curriculum("RJBSNHL", periods=7, iterations_per_period=2)
    expected = list(SequentialCurriculumSampler(TASK_IDS, c, 3, seed=5))
    # BasicSR's loop prefetches one batch ahead but serves every batch of the run, in order
    assert loaded == expected
    batches = torch.tensor(loaded).view(-1, 3)
    for t, row in enumerate(batches):
        assert set(TASK_IDS[row].tolist()) <= {task.id for task in c.active_tasks(t)}
    train_mod = import_basicsr("train")
    assert train_mod.create_train_val_dataloader.__module__ == "basicsr.train"  # restored after the run


def test_basicsr_mixed_mode_draws_all_tasks_from_the_first_iteration(tmp_path, monkeypatch):
    opt = _options(tmp_path, curriculum={"order": "SBNJRHL", "mode": "mixed", "periods": 7})
    loaded = _run_basicsr(tmp_path, monkeypatch, opt)
    first = torch.tensor(loaded[:3])
    assert len(set(TASK_IDS[first].tolist())) == 3  # 3 slots cycle over all 7 active tasks (sequential: 1 task)


def test_basicsr_epochs_cut_the_stream_and_resume_mid_epoch():
    from mio_strategies.integrations.basicsr_curriculum import build_curriculum_sampler

    class DS:
        task_ids = TASK_IDS

        def __len__(self):
            return 42

    opt = _options(None, curriculum={"order": "SBNJRHL", "periods": 7}) | {"rank": 0, "world_size": 1, "dist": False}
    s = build_curriculum_sampler(opt, DS())
    assert s.iterations_per_epoch == 14  # ceil(42 / 3): BasicSR's num_iter_per_epoch
    full = list(s.sampler)
    s.sampler.set_iteration(0)
    assert list(s) == full  # epoch 0 covers the whole 14-iteration run
    s.set_epoch(1)
    assert list(s) == [] and len(s) == 0
    resumed = build_curriculum_sampler(opt, DS(), start_iteration=5)
    assert list(resumed) == full[15:]


def test_yaml_scheduler_misaligned_with_periods_is_refused():
    from mio_strategies.integrations.basicsr_curriculum import curriculum_from_options

    opt = _options(None, curriculum={"periods": 7}, scheduler_periods=[7, 7])
    with pytest.raises(ValueError, match=r"CosineAnnealingRestartLR has periods \[7, 7\] .* 7 x 2: use \{'type'"):
        curriculum_from_options(opt)


@pytest.mark.parametrize(
    "section, exc, msg",
    [
        ({"periods": 7, "colour": 1}, KeyError, r"unknown keys \['colour'\] in datasets.train.curriculum: valid keys"),
        ({"periods": 7, "mode": "random"}, ValueError, r"mode must be one of \('sequential', 'mixed'\), got 'random'"),
        ({"periods": 4}, ValueError, r"total_iter=14 is not a multiple of datasets.train.curriculum.periods=4"),
        ({"periods": 7, "iterations_per_period": 3}, ValueError, r"7 x iterations_per_period=3 = 21 iterations but train.total_iter=14"),
    ],
)
def test_bad_yaml_curriculum_options_are_refused(section, exc, msg):
    from mio_strategies.integrations.basicsr_curriculum import curriculum_from_options

    opt = _options(None, curriculum=section)
    with pytest.raises(exc, match=msg):
        curriculum_from_options(opt)


def test_dataset_without_task_ids_is_refused():
    from mio_strategies.integrations.basicsr_curriculum import build_curriculum_sampler

    opt = _options(None, curriculum={"periods": 7}) | {"rank": 0, "world_size": 1, "dist": False}
    with pytest.raises(TypeError, match=r"train dataset list has no .task_ids"):
        build_curriculum_sampler(opt, [1, 2, 3])


def test_import_basicsr_hint_only_when_basicsr_itself_is_missing(monkeypatch):
    from mio_strategies.utils import basicsr_compat as _basicsr_compat

    with pytest.raises(ModuleNotFoundError, match=r"basicsr\.no_such_module") as info:
        import_basicsr("no_such_module")  # a wrong submodule is not an install problem
    assert "pip install" not in str(info.value)
    monkeypatch.setitem(sys.modules, "basicsr", None)  # makes `import basicsr` fail as if not installed
    with pytest.raises(ImportError, match=re.escape(_basicsr_compat._INSTALL_HINT)):
        import_basicsr()
