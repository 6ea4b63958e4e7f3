"""Every ```python block of the documentation runs as written.

The blocks of one page share a namespace, as in a reader's session, and run in a temporary folder.
A block that is not meant to run on its own (it needs the reader's data) is fenced as ```py instead.
Pages whose snippets a dedicated test runs are left to it (``COVERED_ELSEWHERE``), and the README's
quickstart is run by ``test_readme.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
COVERED_ELSEWHERE = {
    "curriculum.md": "test_curriculum_docs.py",
    "prompts.md": "test_prompt_docs.py",
    "prompts_explicit.md": "test_prompt_docs.py",
    "prompts_adaptive.md": "test_prompt_docs.py",
}
# the pages whose snippets train or project for more than a few seconds are marked slow in tests/conftest.py
# pages whose snippets need an optional package (an extra that .ci/install installs); skipped without it
REQUIRES = {"lightning.md": "lightning", "analysis.md": "sklearn", "guides/attach-prompts.md": "spandrel_extra_arches"}
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _pages():
    for page in sorted(DOCS.rglob("*.md")):
        rel = page.relative_to(DOCS).as_posix()
        if rel in COVERED_ELSEWHERE or not BLOCK.search(page.read_text()):
            continue
        marks = [pytest.mark.basicsr] if "basicsr" in page.read_text() else []
        yield pytest.param(page, id=rel, marks=marks)


PAGES = list(_pages())


def test_the_guides_and_concepts_have_snippets():
    names = {p.values[0].relative_to(DOCS).as_posix() for p in PAGES}
    assert {
        "tasks.md",
        "degradations.md",
        "data.md",
        "analysis.md",
        "concepts.md",
        "reproducing.md",
        "guides/pytorch-loop.md",
        "guides/attach-prompts.md",
        "guides/compare-strategies.md",
    } <= names


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("page", PAGES)
def test_doc_snippets_run(page, tmp_path, monkeypatch):
    rel = page.relative_to(DOCS).as_posix()
    if rel in REQUIRES:
        pytest.importorskip(REQUIRES[rel], reason=f"{rel} needs {REQUIRES[rel]} (an extra: pip install -e '.[all]')")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(BLOCK.findall(page.read_text())):
        exec(compile(block, f"{page.relative_to(DOCS)}[{i}]", "exec"), namespace)
