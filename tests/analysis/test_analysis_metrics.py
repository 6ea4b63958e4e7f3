"""Calinski-Harabasz index, projections, input validation and the optional-dependency check."""

from __future__ import annotations

import doctest
import importlib
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import calinski_harabasz_score

import mio_strategies.analysis as analysis
from mio_strategies.analysis import CalinskiHarabasz, DDRResult, calinski_harabasz, project


def blobs(spread: float, *, n_per: int = 20, k: int = 3, dim: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """k Gaussian blobs of unit variance whose centres are ``spread`` apart along the axes."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(k).repeat_interleave(n_per)
    centres = torch.eye(k, dim) * spread
    return centres[labels] + torch.randn(k * n_per, dim, generator=g), labels


# ---------------------------------------------------------------- CHI


@pytest.mark.parametrize("spread", [0.5, 3.0, 10.0])
def test_chi_equals_sklearn_on_blobs(spread):
    x, y = blobs(spread)
    assert calinski_harabasz(x, y) == pytest.approx(calinski_harabasz_score(x.double().numpy(), y.numpy()), rel=1e-12)


def test_chi_accepts_numpy_and_string_labels():
    x, y = blobs(4.0)
    names = np.array(["sr", "blur", "noise"])[y.numpy()]
    assert calinski_harabasz(x.numpy(), names) == pytest.approx(calinski_harabasz(x, y))


def test_better_separated_blobs_score_higher():
    scores = [calinski_harabasz(*blobs(s)) for s in (0.5, 2.0, 8.0)]
    assert scores[0] < scores[1] < scores[2]


def test_stateful_chi_matches_functional_over_batches():
    x, y = blobs(3.0)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(1))
    metric = CalinskiHarabasz()
    for idx in perm.split(7):
        metric.update(x[idx], y[idx])
    assert metric.num_samples == x.shape[0]
    assert metric.compute() == pytest.approx(calinski_harabasz(x, y))
    metric.reset()
    with pytest.raises(ValueError, match="before update"):
        metric.compute()


def test_stateful_chi_rejects_a_channel_change():
    metric = CalinskiHarabasz()
    metric.update(torch.zeros(2, 3), [0, 1])
    with pytest.raises(ValueError, match="4 channels but earlier batches had 3"):
        metric.update(torch.zeros(2, 4), [0, 1])


def test_chi_rejects_a_single_label():
    with pytest.raises(ValueError, match=r"at least 2 distinct labels, got 1 \(\[3\]\)"):
        calinski_harabasz(torch.randn(5, 2, generator=torch.Generator().manual_seed(0)), [3] * 5)


def test_chi_rejects_a_label_with_one_sample():
    x = torch.arange(10.0).reshape(5, 2)
    with pytest.raises(ValueError, match=r"labels \[2\] have only 1 sample"):
        calinski_harabasz(x, [0, 0, 1, 1, 2])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_chi_rejects_non_finite_features(bad):
    x, y = blobs(2.0)
    x[4, 1] = bad
    with pytest.raises(ValueError, match=r"NaN or inf: 1 non-finite values in 1 rows \(first rows \[4\]\)"):
        calinski_harabasz(x, y)


def test_chi_rejects_mismatched_lengths():
    x, y = blobs(2.0)
    with pytest.raises(ValueError, match="features have 60 rows but labels have 59"):
        calinski_harabasz(x, y[:-1])


def test_chi_rejects_unpooled_features():
    with pytest.raises(ValueError, match=r"Expected 2D features of shape \(N, C\), got 4D"):
        calinski_harabasz(torch.zeros(4, 3, 2, 2), [0, 0, 1, 1])


def test_chi_rejects_float_labels():
    with pytest.raises(TypeError, match="labels must be integers or strings"):
        calinski_harabasz(torch.zeros(4, 2), torch.tensor([0.0, 0.0, 1.0, 1.0]))


# ---------------------------------------------------------------- projections


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_projection_has_shape_n_by_2_and_repeats_for_a_seed(method):
    x, _ = blobs(3.0)
    a = project(x, method, seed=7)
    b = project(x, method, seed=7)
    assert a.shape == (60, 2) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)


def test_tsne_seed_reaches_the_random_init():
    # with the default PCA init t-SNE is deterministic; a random init must follow the seed
    x, _ = blobs(3.0)
    a = project(x, "tsne", seed=1, init="random")
    np.testing.assert_array_equal(a, project(x, "tsne", seed=1, init="random"))
    assert not np.allclose(a, project(x, "tsne", seed=2, init="random"))


def test_umap_projection_has_shape_n_by_2_and_repeats_for_a_seed():
    # the only UMAP test: its first call compiles with numba (~10 s)
    x, _ = blobs(3.0)
    a = project(x, "umap", seed=3)
    b = project(x, "umap", seed=3)
    assert a.shape == (60, 2)
    np.testing.assert_array_equal(a, b)


def test_projection_rejects_unknown_method():
    with pytest.raises(ValueError, match=r"unknown projection method 'lda': choose one of \['umap', 'tsne', 'pca'\]"):
        project(torch.zeros(5, 3), "lda")


def test_projection_rejects_a_bad_seed():
    with pytest.raises(TypeError, match="seed must be an integer in 0..4294967295, got float 1.5"):
        project(torch.zeros(5, 3), "pca", seed=1.5)
    with pytest.raises(ValueError, match="seed must be an integer in 0..4294967295, got -1"):
        project(torch.zeros(5, 3), "pca", seed=-1)


def test_projection_rejects_bad_thread_counts():
    x, _ = blobs(1.0)
    with pytest.raises(ValueError, match=r"threads must be a positive integer \(or None for the libraries' defaults\), got 0"):
        project(x, "pca", threads=0)
    with pytest.raises(TypeError, match=r"threads must be a positive integer \(or None for the libraries' defaults\), got str '2'"):
        project(x, "pca", threads="2")


def test_projection_with_library_default_threads_has_the_same_shape():
    x, _ = blobs(1.0)
    np.testing.assert_allclose(project(x, "pca", threads=None), project(x, "pca", threads=1), atol=1e-10)


def test_projection_rejects_options_that_clash_with_the_seed():
    with pytest.raises(ValueError, match=r"options \['random_state'\] are set by project"):
        project(torch.randn(5, 3, generator=torch.Generator().manual_seed(0)), "pca", random_state=4)


def test_projection_rejects_a_single_channel():
    with pytest.raises(ValueError, match="at least 2 feature channels"):
        project(torch.zeros(5, 1), "pca")


def test_ddr_result_from_features_scores_embedding_and_features():
    x, y = blobs(6.0)
    res = DDRResult.from_features(x, y, method="pca", seed=0, module="probe")
    assert res.chi == pytest.approx(calinski_harabasz_score(res.embedding, y.numpy()))
    assert res.chi_features == pytest.approx(calinski_harabasz_score(x.double().numpy(), y.numpy()))
    assert res.summary() == {
        "chi": res.chi,
        "chi_features": res.chi_features,
        "n": 60,
        "channels": 5,
        "method": "pca",
        "module": "probe",
        "seed": 0,
        "counts": {"sr": 20, "blur": 20, "noise": 20},
    }


def test_ddr_result_checks_clusters_before_projecting(monkeypatch):
    import mio_strategies.analysis.representation as ddr_module

    def fail(*a, **k):
        raise AssertionError("projection must not run on invalid labels")

    monkeypatch.setattr(ddr_module, "project", fail)
    with pytest.raises(ValueError, match="at least 2 distinct labels"):
        DDRResult.from_features(torch.zeros(6, 3), [1] * 6, method="tsne")


def test_ddr_result_rejects_labels_that_are_not_tasks():
    with pytest.raises(KeyError, match="unknown task id 9"):
        DDRResult.from_features(torch.zeros(6, 3), [0, 0, 0, 9, 9, 9], method="pca")


# ---------------------------------------------------------------- optional dependencies


@pytest.mark.parametrize(
    ("blocked", "call"),
    [
        ("umap", lambda: project(torch.randn(8, 3, generator=torch.Generator().manual_seed(0)), "umap")),
        ("sklearn", lambda: calinski_harabasz(torch.arange(8.0).reshape(4, 2), [0, 0, 1, 1])),
        ("matplotlib", lambda: analysis.plot_psnr_bars({"m": {"sr": 25.0}})),
    ],
)
def test_missing_optional_dependency_names_the_extra(monkeypatch, blocked, call):
    for name in [m for m in sys.modules if m == blocked or m.startswith(blocked + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, blocked, None)
    with pytest.raises(ImportError, match=r"install the analysis extra: pip install mio-strategies\[analysis\]"):
        call()


def test_importing_the_analysis_package_stays_light():
    import subprocess

    code = (
        "import sys, mio_strategies.analysis; "
        "print([m for m in ('sklearn', 'matplotlib', 'umap') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["features", "metrics", "projection", "representation", "plots", "_testset", "__init__",
                                  "mio_strategies.harness._analyze_model"])
def test_docstring_examples_run(name):
    full = name if name.startswith("mio_strategies.") else f"mio_strategies.analysis.{name}"
    module = analysis if name == "__init__" else importlib.import_module(full)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
