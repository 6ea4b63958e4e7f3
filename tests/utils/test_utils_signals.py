"""utils/signals.py: the signal exceptions cross a process boundary intact (a sweep's workers report them)."""

from __future__ import annotations

import pickle
import signal
from pathlib import Path

from mio_strategies.harness import TrainingInterrupted
from mio_strategies.utils.signals import Interrupted, exit_code


def test_interrupted_survives_pickling_with_its_signal_and_message():
    exc = pickle.loads(pickle.dumps(Interrupted(signal.SIGTERM)))
    assert type(exc) is Interrupted and exc.signum == signal.SIGTERM
    assert str(exc) == "interrupted by SIGTERM" and exit_code(exc.signum) == 143
    custom = pickle.loads(pickle.dumps(Interrupted(signal.SIGINT, "stopped at step 3")))
    assert custom.signum == signal.SIGINT and str(custom) == "stopped at step 3"


def test_training_interrupted_survives_pickling_with_where_to_resume(tmp_path):
    exc = TrainingInterrupted(signal.SIGINT, 120, 2000, tmp_path / "run")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is TrainingInterrupted and back.signum == signal.SIGINT
    assert (back.iteration, back.total, back.output_dir) == (120, 2000, Path(tmp_path / "run"))
    assert back.checkpoint == exc.checkpoint and str(back) == str(exc)
    assert "after iteration 120 of 2000" in str(back)
