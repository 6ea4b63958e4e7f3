import subprocess
import sys

import mio_strategies


def test_public_names_resolve():
    for name in mio_strategies.__all__:
        assert getattr(mio_strategies, name) is not None, name


def test_import_is_light():
    code = (
        "import sys, mio_strategies; "
        "heavy = [m for m in ('sklearn', 'matplotlib', 'basicsr', 'umap') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_help_runs():
    out = subprocess.run([sys.executable, "-m", "mio_strategies", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "mio-strategies" in out.stdout


def test_the_tests_mirror_the_package():
    """tests/<name>/ exists only for a package mio_strategies/<name>/ (or the benchmarks), test file names are unique."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    tests = root / "tests"
    allowed = {p.name for p in (root / "mio_strategies").iterdir() if (p / "__init__.py").is_file()}
    allowed |= {"benchmarks", "fixtures"}
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    assert folders <= allowed, f"tests/{sorted(folders - allowed)} mirror no package of mio_strategies/"
    files = [p for p in tests.rglob("test_*.py") if "fixtures" not in p.parts]
    names = [p.name for p in files]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    assert {p.parent.name for p in files} - {"tests"} >= {"harness", "prompts", "degradations", "curriculum"}
