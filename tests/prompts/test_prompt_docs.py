"""The Python snippets of docs/prompts*.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

DOCS = sorted((Path(__file__).resolve().parents[2] / "docs").glob("prompts*.md"))


PAGES = [pytest.param(p, id=p.name, marks=[pytest.mark.basicsr] if "basicsr" in p.read_text() else []) for p in DOCS]


@pytest.mark.parametrize("page", PAGES)
def test_doc_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert blocks, f"{page.name} has no python snippet"
    namespace: dict = {}
    for block in blocks:  # blocks of a page share a namespace, like a reader's session
        exec(compile(block, f"{page.name}", "exec"), namespace)
