"""Benchmark protocols as data: three-task, five-task, CDD-11 and the seed paper's seven-task setting.

A :class:`Protocol` says which tasks, which training and test folders (and how their files pair), how
many pairs each holds, how scores are computed, what was published and the default training schedule.
Readers turn a user's download into the library's items; :func:`check_tree` validates it first.

Example:
    >>> from mio_strategies.protocols import get_protocol, list_protocols
    >>> list_protocols()
    ['cdd11', 'five-task', 'mio-7', 'three-task']
    >>> p = get_protocol("three-task")
    >>> [s.name for s in p.test_sets]
    ['sots', 'rain100l', 'bsd68-15', 'bsd68-25', 'bsd68-50']
    >>> [t.letter for t in p.slots]
    ['R', 'N', 'H']
"""

from __future__ import annotations

from mio_strategies.protocols._check import (
    PROBLEM_KINDS,
    CheckReport,
    Problem,
    check_tree,
    expected_tree,
)
from mio_strategies.protocols._definitions import PROTOCOLS
from mio_strategies.protocols._readers import (
    ProtocolTestDataset,
    ProtocolTrainDataset,
    add_test_noise,
    centre_crop_to_multiple,
    has_composites,
    resolve_split_root,
)
from mio_strategies.protocols._spec import (
    DatasetInfo,
    Evaluation,
    Folder,
    Protocol,
    ProtocolTask,
    ReferenceRow,
    TestSet,
    TrainPreset,
)
from mio_strategies.utils.validation import choice

__all__ = [
    "PROBLEM_KINDS",
    "CheckReport",
    "DatasetInfo",
    "Evaluation",
    "Folder",
    "Problem",
    "Protocol",
    "ProtocolTask",
    "ProtocolTestDataset",
    "ProtocolTrainDataset",
    "ReferenceRow",
    "TestSet",
    "TrainPreset",
    "add_test_noise",
    "centre_crop_to_multiple",
    "check_tree",
    "expected_tree",
    "get_protocol",
    "has_composites",
    "list_protocols",
    "resolve_split_root",
]


def list_protocols() -> list[str]:
    """Names of the registered protocols, sorted."""
    return sorted(PROTOCOLS)


def get_protocol(name: str | Protocol) -> Protocol:
    """The protocol registered as ``name`` (a :class:`Protocol` is returned as is).

    Raises:
        KeyError: an unknown name (suggests the closest and lists them all).

    Example:
        >>> get_protocol("cdd11").task("low_haze_snow").components
        ('lowlight', 'haze', 'rain')
    """
    if isinstance(name, Protocol):
        return name
    return PROTOCOLS[choice("protocol", name, list_protocols(), error=KeyError)]
