"""The seven restoration tasks: the one source of truth for names, letters and integer ids.

Every part of the library (degradations, datasets, the curriculum, prompts, evaluation) names
tasks through this module, in the canonical order S, B, N, J, R, H, L (ids 0..6).

Example:
    >>> from mio_strategies.tasks import get_task, parse_tasks
    >>> get_task("noise").letter
    'N'
    >>> [t.name for t in parse_tasks("SBN")]
    ['sr', 'blur', 'noise']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Union

__all__ = [
    "Task",
    "TASKS",
    "TASK_NAMES",
    "TASK_LETTERS",
    "TASK_COLORS",
    "NUM_TASKS",
    "UnknownTaskError",
    "get_task",
    "parse_tasks",
    "task_ids",
]


@dataclass(frozen=True)
class Task:
    """One restoration task.

    Attributes:
        id: integer id, the position in the canonical order S, B, N, J, R, H, L.
        name: canonical lower-case name (``"sr"``, ``"blur"``, ...).
        letter: one upper-case letter (``"S"``, ``"B"``, ...).
        title: human-readable title for tables and plots.
    """

    id: int
    name: str
    letter: str
    title: str

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.name


TASKS: tuple[Task, ...] = (
    Task(0, "sr", "S", "Super-resolution"),
    Task(1, "blur", "B", "Deblurring"),
    Task(2, "noise", "N", "Denoising"),
    Task(3, "jpeg", "J", "JPEG artifact removal"),
    Task(4, "rain", "R", "Deraining"),
    Task(5, "haze", "H", "Dehazing"),
    Task(6, "lowlight", "L", "Low-light enhancement"),
)
"""The seven tasks in the canonical order S, B, N, J, R, H, L (their integer ids are their positions)."""
TASK_NAMES: tuple[str, ...] = tuple(t.name for t in TASKS)
"""The tasks' names in canonical order (``"sr"``, ``"blur"``, ...)."""
TASK_LETTERS: tuple[str, ...] = tuple(t.letter for t in TASKS)
"""The tasks' letters in canonical order (``"S"``, ``"B"``, ...)."""
NUM_TASKS: int = len(TASKS)
"""The number of tasks (7)."""
TASK_COLORS: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
"""One colour per task for every plot of the library (Okabe-Ito, colour-blind safe), in canonical order."""

_BY_NAME = {t.name: t for t in TASKS}
_BY_LETTER = {t.letter: t for t in TASKS}

TaskLike = Union[Task, str, int]


class UnknownTaskError(KeyError, ValueError):
    """A task name, letter or id that is not one of the seven. Catchable as KeyError or ValueError."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _valid_listing() -> str:
    return ", ".join(f"{t.name!r} ({t.letter}, id {t.id})" for t in TASKS)


def get_task(task: TaskLike) -> Task:
    """Resolve a task given by name, letter, integer id or :class:`Task`.

    Names are matched case-insensitively (``"sr"``, ``"Blur"``); letters are single characters
    (``"S"`` or ``"s"``); ids are ``0..6``.

    Raises:
        UnknownTaskError: (a ``KeyError`` and ``ValueError``) listing the valid tasks.
        TypeError: for anything that is not a str, int or Task.
    """
    if isinstance(task, Task):
        return task
    if isinstance(task, bool):
        raise TypeError(f"task must be a name, letter, id or Task, got bool {task!r}")
    if isinstance(task, int) or (hasattr(task, "__index__") and not isinstance(task, str)):
        idx = int(task.__index__())  # numpy / torch integer scalars
        if 0 <= idx < NUM_TASKS:
            return TASKS[idx]
        raise UnknownTaskError(f"unknown task id {idx}: valid ids are 0..{NUM_TASKS - 1} ({_valid_listing()})")
    if isinstance(task, str):
        key = task.strip()
        if key.lower() in _BY_NAME:
            return _BY_NAME[key.lower()]
        if len(key) == 1 and key.upper() in _BY_LETTER:
            return _BY_LETTER[key.upper()]
        raise UnknownTaskError(f"unknown task {task!r}: valid tasks are {_valid_listing()}")
    raise TypeError(f"task must be a name, letter, id or Task, got {type(task).__name__} {task!r}")


def parse_tasks(spec: str | Iterable[TaskLike], *, allow_duplicates: bool = False) -> tuple[Task, ...]:
    """Parse a sequence of tasks.

    ``spec`` is a string of letters (``"SBNJRHL"``), a comma- or space-separated string of names or
    letters (``"sr, blur"``), a single task name (``"noise"``), or an iterable of names, letters,
    ids or tasks. An upper-case string is read as letters first (``"SR"`` is sr then rain), a
    lower-case one as a name first (``"sr"``).

    Raises:
        UnknownTaskError: an unknown element (the message lists the valid tasks).
        ValueError: an empty spec, or a task given twice (unless ``allow_duplicates``).
    """
    items: list[TaskLike]
    if isinstance(spec, str):
        text = spec.strip()
        if not text:
            raise ValueError("empty task list: give letters such as 'SBNJRHL' or names such as 'sr,blur'")
        if "," in text or " " in text:
            items = [p for p in text.replace(",", " ").split() if p]
        elif text.isupper() and all(c in _BY_LETTER for c in text):
            items = list(text)  # "SR" is super-resolution then rain; "sr" is the task name
        elif text.lower() in _BY_NAME:
            items = [text]
        elif all(c.upper() in _BY_LETTER for c in text):
            items = list(text)
        else:
            bad = [c for c in text if c.upper() not in _BY_LETTER]
            raise UnknownTaskError(
                f"unknown task {text!r} (not a task name, and letters {bad} are not task letters): "
                f"valid tasks are {_valid_listing()}"
            )
    else:
        items = list(spec)
    tasks = tuple(get_task(i) for i in items)
    if not tasks:
        raise ValueError("empty task list: give at least one task")
    if not allow_duplicates:
        seen: set[int] = set()
        dups = [t.name for t in tasks if t.id in seen or seen.add(t.id)]  # type: ignore[func-returns-value]
        if dups:
            raise ValueError(f"duplicate tasks {dups} in {spec!r}: each task may appear once")
    return tasks


def task_ids(spec: str | Iterable[TaskLike]) -> list[int]:
    """Integer ids of :func:`parse_tasks` ``(spec)``."""
    return [t.id for t in parse_tasks(spec)]
