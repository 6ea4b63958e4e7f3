"""The documentation site: it builds in strict mode, and its API reference covers every public name."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference():
    pytest.importorskip("griffe", reason="the docs extra is not installed (pip install -e '.[docs]')")
    return _script("docs_reference")


def test_every_public_name_has_a_docstring(reference):
    pages = reference.public_api()
    assert {
        "mio_strategies.tasks",
        "mio_strategies.degradations",
        "mio_strategies.prompts",
        "mio_strategies.curriculum",
        "mio_strategies.data",
        "mio_strategies.analysis",
        "mio_strategies.models",
        "mio_strategies.metrics",
        "mio_strategies.checkpoints",
        "mio_strategies.protocols",
        "mio_strategies.integrations.lightning",
    } <= set(pages)
    assert reference.missing_docstrings(pages) == []


def test_every_root_name_is_documented_on_a_page(reference):
    documented = {public.rsplit(".", 1)[1] for public in reference.documented_at(reference.public_api()).values()}
    assert set(reference.root_exports()) - {"__version__"} <= documented


def test_a_name_is_documented_once_on_its_shortest_public_module(reference):
    pages = reference.public_api()
    assert "ddr" in pages["mio_strategies.analysis"]
    assert "mio_strategies.analysis.representation" not in pages  # all its names are on the analysis page
    names = [(module, name) for module, names in pages.items() for name in names]
    where = reference.documented_at(pages)
    assert len(where) == len(names)  # no object on two pages


def test_an_undocumented_public_name_is_reported(reference, tmp_path):
    pkg = tmp_path / "toypkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Toy."""\n')
    (pkg / "sub" / "__init__.py").write_text(
        '"""Sub."""\nfrom toypkg.sub._impl import f, g, LIMIT, OTHER, PLAIN, SIZE\n'
        '__all__ = ["f", "g", "LIMIT", "OTHER", "PLAIN", "SIZE"]\n'
    )
    (pkg / "sub" / "_impl.py").write_text(
        'def f():\n    """Documented."""\n\n\ndef g():\n    pass\n\n\nLIMIT = 3\n"""The limit."""\nOTHER = 4\n'
        "# a plain comment\nPLAIN = 5\n#: the size,\n#: in pixels\nSIZE = 6\n"
    )
    package = reference.load_package("toypkg", tmp_path)
    pages = reference.public_api(package)
    assert pages == {"toypkg.sub": ["f", "g", "LIMIT", "OTHER", "PLAIN", "SIZE"]}
    assert reference.missing_docstrings(pages, package) == ["toypkg.sub.OTHER", "toypkg.sub.PLAIN", "toypkg.sub.g"]
    size = package["sub"].members["SIZE"].final_target
    assert size.docstring.value == "The size, in pixels"  # Sphinx-style #: comments above the assignment


def test_optional_pages_leave_the_navigation_until_they_exist(tmp_path):
    hooks = _script("docs_hooks")
    (tmp_path / "index.md").write_text("# home\n")
    (tmp_path / "safety.md").write_text("# safety\n")
    nav = [
        {"Home": "index.md"},
        {"Guides": [{"Lightning": "lightning.md"}, {"Missing": "missing.md"}]},
        {"Safety": "safety.md"},
        {"Later": [{"Benchmarks": "benchmarks.md"}]},
        {"API reference": "reference/"},
    ]
    config = hooks.on_config(SimpleNamespace(nav=nav, docs_dir=str(tmp_path)))
    # an optional page that is absent goes (and a section left empty with it); any other entry stays,
    # so that a missing page that is not optional still fails the strict build
    assert config.nav == [
        {"Home": "index.md"},
        {"Guides": [{"Missing": "missing.md"}]},
        {"Safety": "safety.md"},
        {"API reference": "reference/"},
    ]


NARRATIVE = re.compile(
    r"\b(?:this|that|next|previous|the last|a later|an earlier|working) session\b|\bsessions? \d+|"
    r"\bissue #?\d+|\bthis issue\b",
    re.I,
)


def _nav_pages(nav: object) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    items = nav.values() if isinstance(nav, dict) else nav if isinstance(nav, list) else []
    return set().union(*(_nav_pages(item) for item in items)) if items else set()


def test_every_page_is_in_the_navigation():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    in_nav = _nav_pages(config["nav"])
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages - in_nav == set(), "add these pages to the nav of mkdocs.yml"
    assert {p for p in in_nav if p.endswith(".md")} - pages == set()


def test_the_readme_links_lead_to_files_that_exist():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    local = [link for link in links if "://" not in link]
    assert len(local) >= 10 and [link for link in local if not (ROOT / link).exists()] == []


def test_the_docs_speak_of_the_library_not_of_how_the_work_was_organised():
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = [
        f"{p.relative_to(ROOT)}: {m.group(0)!r}"
        for p in pages
        if p.is_file()
        for m in NARRATIVE.finditer(p.read_text())
    ]
    assert found == []
    assert (
        NARRATIVE.search("finished in session 9")
        and NARRATIVE.search("see issue 6")
        and not NARRATIVE.search("a nox session")
    )


def test_the_results_figure_reads_the_results_table():
    spec = importlib.util.spec_from_file_location("_results_bars", ROOT / "docs" / "figures" / "results_bars.py")
    bars = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bars)
    models, identity = bars.read_table(bars.PAGE.read_text())
    assert list(models) == ["M", "S", "M+EP", "S+EP", "S+AP"] and identity["haze"] == 10.27
    assert (ROOT / "docs" / "figures" / "results_bars.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="no converged-tier table"):
        bars.read_table("# nothing here\n")


def test_the_site_builds_in_strict_mode(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    reference = _script("docs_reference")
    env = {
        **os.environ,
        "DISABLE_MKDOCS_2_WARNING": "true",
        "NO_MKDOCS_2_WARNING": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    site = tmp_path / "site"
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    for module in reference.public_api():
        page = site / "reference" / module.removeprefix("mio_strategies.").replace(".", "/") / "index.html"
        assert page.is_file(), f"no reference page for {module}"
    html = (site / "reference" / "prompts" / "index.html").read_text()
    assert 'id="mio_strategies.prompts.PromptInjector"' in html and "Examples" in html
    for page in ("guides/pytorch-loop", "reproducing", "results/cpu-scale", "changelog"):
        assert (site / page / "index.html").is_file(), page
