"""Property-based tests: the config loader and the parameter validation answer any input with a valid
result or a clear ValueError / TypeError (KeyError for an unknown config key), never another exception;
and a training run killed at random points resumes to exactly the uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mio_strategies.harness import load_checkpoint, load_config, train  # noqa: E402
from mio_strategies.harness._config import _FIELDS  # noqa: E402

CLEAR = (ValueError, TypeError, KeyError)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)
keys = st.one_of(st.sampled_from(sorted(_FIELDS)), st.text(min_size=1, max_size=12))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=4))
def test_the_config_loader_answers_any_mapping_clearly(data):
    try:
        cfg = load_config({"backbone": "srresnet_tiny", **data})
    except CLEAR as exc:
        assert str(exc)  # a message, not an empty error
    else:
        assert cfg.total_iters == cfg.periods * cfg.period_iters


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.one_of(values, st.dictionaries(keys, values, max_size=4)))
def test_the_config_loader_answers_any_yaml_file_clearly(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_config(path)
    except CLEAR as exc:
        assert str(exc)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=3))
def test_overrides_answer_any_text_clearly(items):
    try:
        load_config("cpu_demo", items)
    except CLEAR as exc:
        assert str(exc)


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(2**90), max_value=2**90),
                    st.booleans(), st.none(), st.text(max_size=4))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["sr", "blur", "noise", "jpeg", "rain", "haze", "lowlight"]), st.data())
def test_degradation_parameters_are_validated_clearly(task, data):
    from mio_strategies.degradations import TASK_PARAMS, degrade

    params = {spec.name: data.draw(numbers, label=spec.name) for spec in TASK_PARAMS[task]}
    try:
        y, _p = degrade(torch.rand(1, 3, 16, 16), task, params=params)
    except CLEAR as exc:
        assert str(exc)
    else:
        assert y.shape == (1, 3, 16, 16) and bool(torch.isfinite(y).all())


# ----------------------------------------------------------------------------------- fault injection
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
RUN = ["backbone=srresnet_tiny", "backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1", "periods=7",
       "period_iters=3", "batch_size=2", "patch_size=16", "val_size=24", "prompt_size=16", "log_every=1",
       "lr=1e-3", "lr_min=1e-5", "ema_decay=0.9", "checkpoint_every=2", "strategy=S+EP"]


def _states_equal(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_states_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_states_equal(x, y) for x, y in zip(a, b))
    return a == b


def _logged_iterations(log):
    if not log.is_file():
        return []
    out = []
    for line in log.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by SIGKILL
        if rec.get("kind") == "train":
            out.append(rec["iteration"])
    return out


def _cmd(out, resume):
    return [sys.executable, "-m", "mio_strategies", "train", "--config", "cpu_demo",
            *[a for o in RUN for a in ("--set", o)], "--output", str(out), "--no-progress",
            *(["--resume"] if resume else [])]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The final checkpoint of the run trained without interruption."""
    cfg = load_config("cpu_demo", RUN)
    return load_checkpoint(train(cfg, tmp_path_factory.mktemp("ref") / "run", progress=False).checkpoint)


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_run_killed_at_random_points_resumes_to_the_uninterrupted_run(sig, seed, reference, tmp_path):
    rng = random.Random(seed)
    out = tmp_path / "run"
    kills = 0
    for _ in range(3):  # kill, resume, kill again; then let it finish
        resume = (out / "checkpoint.pt").is_file()
        proc = subprocess.Popen(_cmd(out, resume), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        log = out / "log.jsonl"
        # the killed leg's log may run past its checkpoint (the resumed run drops those records): aim past them
        logged = _logged_iterations(log)
        target = max([0, *logged]) + rng.randint(1, 6)
        deadline = time.time() + 240
        while proc.poll() is None and time.time() < deadline:
            if max([0, *_logged_iterations(log)]) >= target:
                time.sleep(rng.random() * 0.2)  # somewhere inside a later step, or a checkpoint write
                proc.send_signal(sig)
                kills += 1
                break
            time.sleep(0.02)
        _, err = proc.communicate(timeout=240)
        assert "Traceback" not in err, err
        if proc.returncode == 0:
            break
        if sig == signal.SIGTERM and proc.returncode == -signal.SIGTERM:
            # the signal landed after the training loop had ended (its handler is gone): only right when the
            # run was already finished and saved, with nothing left to lose
            assert load_checkpoint(out / "checkpoint.pt")["finished"], err
            break
        assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 143), err
    else:
        res = subprocess.run(_cmd(out, True), env=ENV, capture_output=True, text=True, timeout=240)
        assert res.returncode == 0, res.stderr
    final = load_checkpoint(out / "checkpoint.pt")
    assert kills >= 1 and final["finished"]
    for key in ("model", "ema", "optimizer", "scheduler", "sampler", "iteration"):
        assert _states_equal(final[key], reference[key]), key
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
