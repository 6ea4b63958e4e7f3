"""The curriculum schedule: parsing orders, active tasks per iteration, periods, mixed baseline, display."""

from __future__ import annotations

import pytest

from mio_strategies.curriculum import PAPER_ORDERS, Curriculum
from mio_strategies.tasks import UnknownTaskError, parse_tasks


def letters(tasks):
    return "".join(t.letter for t in tasks)


def test_paper_default_is_one_task_per_period_then_all_from_period_7():
    c = Curriculum(iterations_per_period=100)
    assert c.spec == "SBNJRHL" and c.periods == 10 and c.total_iterations == 1000
    assert c.active_counts() == (1, 2, 3, 4, 5, 6, 7, 7, 7, 7)
    assert letters(c.active_tasks(0)) == "S"
    assert letters(c.active_tasks(99)) == "S"
    assert letters(c.active_tasks(100)) == "SB"
    assert letters(c.active_tasks(650)) == "SBNJRHL"
    assert letters(c.active_tasks(999)) == "SBNJRHL"
    assert c.period_starts == tuple(range(0, 1000, 100))


@pytest.mark.parametrize("order", list(PAPER_ORDERS))
def test_both_paper_orders_enter_in_their_order(order):
    c = Curriculum(order, periods=10, iterations_per_period=10)
    assert [c.entry_iteration(t) for t in parse_tasks(order)] == list(range(0, 70, 10))
    assert letters(c.tasks) == order


def test_groups_enter_together():
    c = Curriculum("SB|NJ|R|H|L", periods=6, iterations_per_period=5)
    assert c.num_stages == 5
    assert c.active_counts() == (2, 4, 5, 6, 7, 7)
    assert letters(c.new_tasks(1)) == "NJ" and c.new_tasks(5) == ()
    assert c.spec == "SB|NJ|R|H|L"


@pytest.mark.parametrize(
    "order",
    ["sr,blur,noise", ["sr", "blur", "noise"], ["S", "B", "N"], [0, 1, 2], "S|B|N"],
)
def test_orders_given_as_names_letters_ids_are_equivalent(order):
    assert Curriculum(order, periods=3, iterations_per_period=2) == Curriculum("SBN", periods=3, iterations_per_period=2)


def test_sequence_items_that_are_groups_become_stages():
    c = Curriculum([["sr", "blur"], "NJ", "rain"], periods=3, iterations_per_period=1)
    assert [letters(s) for s in c.stages] == ["SB", "NJ", "R"]
    # a list item reads as the string form reads it: upper-case "SR" is S and R (as in "SR|B"), "sr" the task
    as_list = Curriculum(["SR", "B", "noise"], periods=3, iterations_per_period=1)
    assert [letters(s) for s in as_list.stages] == ["SR", "B", "N"]
    assert as_list.stages == Curriculum("SR|B|N", periods=3, iterations_per_period=1).stages
    assert [letters(s) for s in Curriculum(["sr", "B"], periods=2, iterations_per_period=1).stages] == ["S", "B"]


def test_mixed_baseline_has_all_tasks_from_start_and_same_total():
    seq = Curriculum("RJBSNHL", periods=10, iterations_per_period=7)
    mixed = seq.as_mixed()
    assert mixed.is_mixed and not seq.is_mixed
    assert mixed.total_iterations == seq.total_iterations
    assert set(mixed.active_tasks(0)) == set(seq.tasks)
    assert mixed == Curriculum.mixed("RJBSNHL", periods=10, iterations_per_period=7)
    assert repr(mixed) == "Curriculum.mixed('RJBSNHL', periods=10, iterations_per_period=7)"


def test_dict_round_trip_preserves_groups_and_mixed():
    for c in (Curriculum("SB|N", periods=4, iterations_per_period=3), Curriculum.mixed("SBN", periods=2, iterations_per_period=1)):
        assert Curriculum.from_dict(c.to_dict()) == c
        assert eval(repr(c), {"Curriculum": Curriculum}) == c


def test_describe_lists_every_period_with_new_tasks():
    text = str(Curriculum("SB|N", periods=3, iterations_per_period=1000))
    lines = text.splitlines()
    assert lines[0] == "Sequential curriculum 'SB|N': 3 periods x 1,000 iterations = 3,000 iterations"
    assert lines[2].split() == ["1", "0-999", "SB", "(+SB)"]
    assert lines[3].split() == ["2", "1,000-1,999", "SBN", "(+N)"]
    assert lines[4].split() == ["3", "2,000-2,999", "SBN"]


def test_plot_draws_one_bar_per_task_starting_at_entry(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = Curriculum("SBNJRHL", periods=10, iterations_per_period=10)
    ax = c.plot()
    bars = ax.patches
    assert [round(b.get_x()) for b in bars] == [0, 10, 20, 30, 40, 50, 60]
    assert all(round(b.get_x() + b.get_width()) == 100 for b in bars)
    ax.figure.savefig(tmp_path / "t.png")
    plt.close(ax.figure)
    assert (tmp_path / "t.png").stat().st_size > 0


# ---------------------------------------------------------------- bad input


def test_unknown_letter_is_refused_with_valid_list():
    with pytest.raises(UnknownTaskError, match=r"letters \['X'\].*valid tasks are 'sr' \(S, id 0\)"):
        Curriculum("SBX", periods=3, iterations_per_period=1)


def test_unknown_name_is_refused():
    with pytest.raises(UnknownTaskError, match=r"unknown task 'snow'"):
        Curriculum(["sr", "snow"], periods=3, iterations_per_period=1)


@pytest.mark.parametrize("order", ["SBS", "SB|BN", ["sr", "S"]])
def test_duplicate_tasks_are_refused(order):
    with pytest.raises(ValueError, match=r"duplicate tasks \['sr'\]|duplicate tasks \['blur'\]"):
        Curriculum(order, periods=3, iterations_per_period=1)


def test_fewer_periods_than_stages_is_refused():
    with pytest.raises(ValueError, match=r"periods=5 is fewer than the 7 stages .*give periods >= 7"):
        Curriculum("SBNJRHL", periods=5, iterations_per_period=10)


@pytest.mark.parametrize("name", ["periods", "iterations_per_period"])
@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_counts_are_refused(name, value):
    kwargs = {"periods": 10, "iterations_per_period": 10, name: value}
    with pytest.raises(ValueError, match=rf"{name} must be a positive integer, got {value}"):
        Curriculum("SBN", **kwargs)


def test_non_integer_counts_are_refused():
    with pytest.raises(TypeError, match=r"iterations_per_period must be a positive integer, got float 2.5"):
        Curriculum("SBN", periods=3, iterations_per_period=2.5)
    with pytest.raises(TypeError, match=r"periods must be a positive integer, got bool"):
        Curriculum("SBN", periods=True, iterations_per_period=2)


@pytest.mark.parametrize("order", ["", "SB||N", []])
def test_empty_order_or_group_is_refused(order):
    with pytest.raises(ValueError, match=r"empty (order|group)"):
        Curriculum(order, periods=3, iterations_per_period=1)


def test_iteration_outside_run_is_refused():
    c = Curriculum("SB", periods=2, iterations_per_period=5)
    with pytest.raises(ValueError, match=r"iteration 10 is outside the run: valid iterations are 0..9"):
        c.active_tasks(10)
    with pytest.raises(KeyError, match=r"task 'rain' is not in curriculum 'SB'"):
        c.entry_iteration("R")
