"""The runnable snippets of docs/curriculum.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "curriculum.md"
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if "__main__" not in b]


def test_docs_page_has_snippets_and_figure():
    assert len(BLOCKS) >= 3
    assert (DOC.parent / "curriculum_timeline.png").stat().st_size > 10_000
    assert "RJBSNHL" in DOC.read_text() and "SBNJRHL" in DOC.read_text()


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_docs_snippet_runs(index, capsys):
    exec(compile(BLOCKS[index], f"{DOC.name}[{index}]", "exec"), {})
