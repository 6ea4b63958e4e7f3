"""Feature capture: pooling, labels, batching, hook lifecycle, and bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mio_strategies.analysis import FeatureRecorder, capture_features, ddr, pool_features


class TinyNet(nn.Module):
    """conv -> relu -> conv -> tokens (B, N, C) -> linear head; records how often it ran."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.act = nn.ReLU()
        self.body = nn.Conv2d(6, 4, 3, padding=1)
        self.head = nn.Linear(4, 5)
        self.dropout = nn.Dropout(0.5)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.head_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.body(self.act(self.stem(x)))
        tokens = feat.flatten(2).transpose(1, 2)  # (B, N, C)
        self.head_calls += 1
        return self.head(self.dropout(tokens))


def images(n: int, seed: int = 0, size: int = 8) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_pooling_handles_maps_tokens_and_vectors():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    torch.testing.assert_close(pool_features(x), x.mean(dim=(2, 3)))
    tokens = x.flatten(2).transpose(1, 2)  # (B, N, C)
    torch.testing.assert_close(pool_features(tokens), x.mean(dim=(2, 3)))
    vec = torch.ones(2, 7)
    assert pool_features(vec) is vec
    with pytest.raises(ValueError, match=r"cannot pool an output of shape \(5,\)"):
        pool_features(torch.ones(5))
    with pytest.raises(TypeError, match="the captured output is a tuple"):
        pool_features((x,))


def test_capture_equals_manual_pooling_of_the_layer():
    model = TinyNet()
    x = images(7)
    feats, labels = capture_features(model, x, module="body", labels=[0, 1, 2, 3, 4, 5, 6], batch_size=3)
    with torch.no_grad():
        expected = model.body(model.act(model.stem(x))).mean(dim=(2, 3))
    torch.testing.assert_close(feats, expected)
    assert feats.dtype == torch.float32 and labels.dtype == torch.int64
    assert labels.tolist() == list(range(7))


def test_capture_pools_token_outputs_of_the_model():
    model = TinyNet()
    feats, labels = capture_features(model, images(4), module="", labels="haze")
    assert labels.tolist() == [5] * 4
    with torch.no_grad():
        expected = model.eval()(images(4)).mean(dim=1)
    torch.testing.assert_close(feats, expected)


def test_capture_reads_dict_batches_and_tuple_batches_alike():
    model = TinyNet()
    x = images(6)
    dict_batches = [
        {"lq": x[:4], "task": torch.tensor([0, 0, 6, 6])},
        {"lq": x[4], "task": "rain"},  # a single (C, H, W) sample with a task name
        {"lq": x[5:], "task": ["L"]},
    ]
    tuple_batches = [(x[:4], [0, 0, 6, 6]), (x[4:5], 4), (x[5:], "lowlight")]
    a = capture_features(model, dict_batches, module="stem")
    b = capture_features(model, tuple_batches, module="stem")
    torch.testing.assert_close(a.features, b.features)
    assert a.labels.tolist() == b.labels.tolist() == [0, 0, 6, 6, 4, 6]


def test_capture_reads_a_dataloader_of_dicts():
    class Pairs(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int) -> dict:
            return {"lq": images(1, seed=i)[0], "task": i % 2}

    loader = torch.utils.data.DataLoader(Pairs(), batch_size=2)
    feats, labels = capture_features(TinyNet(), loader, module="act")
    assert feats.shape == (5, 6)
    assert labels.tolist() == [0, 1, 0, 1, 0]


def test_callable_source_gives_prompt_like_vectors():
    model = TinyNet()
    table = torch.arange(7 * 3, dtype=torch.float32).reshape(7, 3)

    def prompt_vectors(lq: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        return table[task_ids] + lq.mean(dim=(1, 2, 3))[:, None]

    x = images(4)
    feats, labels = capture_features(model, x, module=prompt_vectors, labels=[1, 3, 3, 5])
    torch.testing.assert_close(feats, table[labels] + x.mean(dim=(1, 2, 3))[:, None])


def test_stop_forward_skips_the_rest_of_the_network_and_gives_the_same_features():
    model = TinyNet()
    fast = capture_features(model, images(6), module="stem", labels=[0] * 6, batch_size=2)
    assert model.head_calls == 0
    full = capture_features(model, images(6), module="stem", labels=[0] * 6, batch_size=2, stop_forward=False)
    assert model.head_calls == 3
    torch.testing.assert_close(fast.features, full.features)


def test_hooks_are_gone_after_capture():
    model = TinyNet()
    capture_features(model, images(3), module="body", labels=[0, 1, 2])
    assert all(not m._forward_hooks for m in model.modules())


def test_hooks_are_gone_after_an_exception_mid_capture():
    model = TinyNet()

    def batches():
        yield images(2), [0, 1]
        raise RuntimeError("disk went away")

    with pytest.raises(RuntimeError, match="disk went away"):
        capture_features(model, batches(), module="body")
    assert all(not m._forward_hooks for m in model.modules())


def test_hooks_are_gone_after_a_bad_batch():
    model = TinyNet()
    with pytest.raises(KeyError, match=r"batch dict is missing \['task'\] \(has \['gt', 'lq'\]\)"):
        capture_features(model, [{"lq": images(2), "gt": images(2)}], module="body")
    assert all(not m._forward_hooks for m in model.modules())


def test_training_flags_are_restored_exactly():
    model = TinyNet().train()
    model.dropout.eval()  # mixed modes must survive
    before = {n: m.training for n, m in model.named_modules()}
    capture_features(model, images(2), module="body", labels=[0, 1])
    assert {n: m.training for n, m in model.named_modules()} == before


def test_capture_runs_in_eval_mode_without_grad():
    model = TinyNet().train()
    seen = {}

    def probe(lq, task_ids):
        seen["training"] = model.dropout.training
        seen["grad"] = torch.is_grad_enabled()
        return lq.mean(dim=(2, 3))

    capture_features(model, images(2), module=probe, labels=[0, 1])
    assert seen == {"training": False, "grad": False}


def test_unknown_module_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"module 'bodi' not found in TinyNet; close matches: \['body'\]"):
        capture_features(TinyNet(), images(2), module="bodi", labels=[0, 1])


def test_module_not_in_model_is_rejected():
    with pytest.raises(ValueError, match="the given Conv2d is not a submodule of TinyNet"):
        capture_features(TinyNet(), images(2), module=nn.Conv2d(3, 3, 1), labels=[0, 1])


def test_mismatched_images_and_labels_are_rejected():
    with pytest.raises(ValueError, match="a batch has 3 images but 2 task labels"):
        capture_features(TinyNet(), images(3), module="body", labels=[0, 1])


def test_tensor_inputs_need_labels():
    with pytest.raises(ValueError, match="give labels="):
        capture_features(TinyNet(), images(3), module="body")


def test_labels_are_refused_for_batches():
    with pytest.raises(ValueError, match="labels= is only for a tensor of images"):
        capture_features(TinyNet(), [(images(2), [0, 1])], module="body", labels=[0, 1])


def test_unknown_task_label_is_rejected():
    with pytest.raises(KeyError, match="unknown task 'snow'"):
        capture_features(TinyNet(), [(images(2), ["snow", "rain"])], module="body")


def test_integer_images_are_rejected_with_the_fix():
    with pytest.raises(TypeError, match=r"convert with x.float\(\) / 255"):
        capture_features(TinyNet(), torch.zeros(2, 3, 4, 4, dtype=torch.uint8), module="body", labels=[0, 1])


def test_a_module_that_runs_twice_per_forward_is_rejected_without_stop_forward():
    shared = nn.Conv2d(3, 3, 1)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    with pytest.raises(ValueError, match=r"module '0' produced 4 rows for a batch of 2"):
        capture_features(model, images(2), module="0", labels=[0, 1], stop_forward=False)
    assert not shared._forward_hooks


def test_a_module_off_the_forward_path_is_reported():
    model = TinyNet()
    model.unused = nn.Conv2d(3, 3, 1)
    with pytest.raises(ValueError, match="module 'unused' did not run in the forward pass"):
        capture_features(model, images(2), module="unused", labels=[0, 1])


def test_empty_inputs_are_rejected():
    with pytest.raises(ValueError, match="inputs yielded no batches"):
        capture_features(TinyNet(), [], module="body")


def test_recorder_lifecycle_attach_twice_is_an_error_and_detach_is_idempotent():
    model = TinyNet()
    rec = FeatureRecorder(model, "stem").attach()
    with pytest.raises(RuntimeError, match="already attached"):
        rec.attach()
    rec.detach()
    rec.detach()
    assert not rec.attached and not model.stem._forward_hooks
    with pytest.raises(ValueError, match="no features recorded at 'stem'"):
        rec.features()


def test_progress_bar_counts_images():
    class Bar:
        n = 0

        def update(self, k: int) -> None:
            self.n += k

    bar = Bar()
    capture_features(TinyNet(), images(5), module="body", labels=[0] * 5, batch_size=2, progress=bar)
    assert bar.n == 5


def test_ddr_one_call_returns_projection_chi_and_labels():
    model = TinyNet()
    # three "tasks" whose images differ in brightness, so the stem features separate them
    x = torch.cat([images(8, seed=s) * scale for s, scale in ((1, 0.2), (2, 1.0), (3, 3.0))])
    res = ddr(model, x, module="stem", labels=[0] * 8 + [3] * 8 + [5] * 8, method="pca", seed=0)
    assert res.embedding.shape == (24, 2)
    assert res.labels.tolist() == [0] * 8 + [3] * 8 + [5] * 8
    assert res.counts() == {"sr": 8, "jpeg": 8, "haze": 8}
    assert res.chi > 10 and res.module == "stem" and res.method == "pca"
    assert ddr(model, x, module=model.body, labels=res.labels, method="pca").module == "body"
