import pytest

from mio_strategies.tasks import (
    NUM_TASKS,
    TASK_LETTERS,
    TASK_NAMES,
    TASKS,
    UnknownTaskError,
    get_task,
    parse_tasks,
    task_ids,
)


def test_canonical_order_is_sbnjrhl():
    assert "".join(TASK_LETTERS) == "SBNJRHL"
    assert TASK_NAMES == ("sr", "blur", "noise", "jpeg", "rain", "haze", "lowlight")
    assert [t.id for t in TASKS] == list(range(NUM_TASKS))


@pytest.mark.parametrize("key", ["noise", "NOISE", "N", "n", 2])
def test_get_task_accepts_name_letter_and_id(key):
    assert get_task(key).name == "noise"


def test_get_task_accepts_numpy_and_torch_integers():
    import numpy as np
    import torch

    assert get_task(np.int64(6)).name == "lowlight"
    assert get_task(torch.tensor(0)).name == "sr"


@pytest.mark.parametrize("key", ["snow", "X", 7, -1])
def test_unknown_task_lists_valid_ones(key):
    with pytest.raises(UnknownTaskError, match=r"valid .*'sr' \(S, id 0\).*'lowlight' \(L, id 6\)"):
        get_task(key)


def test_unknown_task_is_key_and_value_error():
    with pytest.raises(KeyError):
        get_task("snow")
    with pytest.raises(ValueError):
        get_task("snow")


def test_get_task_rejects_other_types():
    with pytest.raises(TypeError, match="got float"):
        get_task(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bool"):
        get_task(True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("SBNJRHL", [0, 1, 2, 3, 4, 5, 6]),
        ("RJBSNHL", [4, 3, 1, 0, 2, 5, 6]),
        ("sr", [0]),
        ("SR", [0, 4]),
        ("sbn", [0, 1, 2]),
        ("sr,blur, noise", [0, 1, 2]),
        ("rain haze", [4, 5]),
        (["lowlight", "S", 2], [6, 0, 2]),
    ],
)
def test_parse_tasks_forms(spec, expected):
    assert task_ids(spec) == expected


def test_parse_tasks_rejects_duplicates_and_unknown_letters():
    with pytest.raises(ValueError, match=r"duplicate tasks \['sr'\]"):
        parse_tasks("SBS")
    with pytest.raises(UnknownTaskError, match=r"letters \['X'\]"):
        parse_tasks("SBX")
    with pytest.raises(ValueError, match="empty task list"):
        parse_tasks("")
    assert len(parse_tasks("SS", allow_duplicates=True)) == 2
