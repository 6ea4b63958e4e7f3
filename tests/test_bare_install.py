"""A bare install (`pip install mio-strategies`, no extras) runs the main job and the README's quickstart.

Each check runs in a fresh interpreter started without its site-packages (`python -S`), given instead a
copy of them (links) without the optional dependencies: the modules of every extra in pyproject.toml are
simply not there, as on a machine where only the library's own requirements are installed. The map below
names the module of every package of every extra, so an extra added to pyproject.toml without an entry
here fails ``test_every_extra_is_left_out``.
"""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]

# distribution name (as pyproject's extras write it) -> the top-level module it installs
OPTIONAL_MODULES = {
    "scikit-learn": "sklearn",
    "umap-learn": "umap",
    "matplotlib": "matplotlib",
    "basicsr": "basicsr",
    "spandrel": "spandrel",
    "spandrel-extra-arches": "spandrel_extra_arches",
    "torch-optimizer": "torch_optimizer",
    "lightning": "lightning",
    "opencv-python": "cv2",
}
# extras that are tools of the repository, not of the library; their packages are left out all the same
# where the library could reach them (scipy and hypothesis come with the test extra)
TOOL_EXTRAS = {"test", "docs", "all"}
ALSO_LEFT_OUT = ("scipy", "pytorch_lightning", "lightning_fabric", "hypothesis", "mio_strategies")


def _requirement_name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].strip().lower()


def _left_out(entry: str) -> bool:
    """Whether a site-packages entry (package, module, .libs folder, dist-info, .pth) belongs to a left-out package."""
    key = entry.lower().replace("-", "_")
    names = {*OPTIONAL_MODULES.values(), *(d.replace("-", "_") for d in OPTIONAL_MODULES), *ALSO_LEFT_OUT}
    return any(key == n or key.startswith((n + ".", n + "_", n + "-")) for n in names) or "__editable__" in key


@pytest.fixture(scope="module")
def bare_site(tmp_path_factory) -> Path:
    """The test environment's site-packages as links, without the optional dependencies."""
    source = Path(site.getsitepackages()[0])
    bare = tmp_path_factory.mktemp("bare-site-packages")
    for entry in os.listdir(source):
        if not _left_out(entry):
            (bare / entry).symlink_to(source / entry)
    return bare


def _bare_python(code: str, site_dir: Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    program = f"import site\nsite.addsitedir({str(site_dir)!r})\n" + textwrap.dedent(code)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, "-S", "-c", program], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_every_extra_is_left_out():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    library_extras = {name: reqs for name, reqs in extras.items() if name not in TOOL_EXTRAS}
    named = {_requirement_name(r) for reqs in library_extras.values() for r in reqs}
    assert named, "pyproject.toml lists no library extras"
    assert named <= set(OPTIONAL_MODULES), (
        f"extras {sorted(named - set(OPTIONAL_MODULES))} have no module in OPTIONAL_MODULES: add them"
    )


def test_the_optional_modules_are_missing_and_the_library_is_the_working_tree(bare_site, tmp_path):
    modules = sorted(set(OPTIONAL_MODULES.values()))
    proc = _bare_python(
        "import importlib.util, torch, numpy, PIL, yaml, tqdm, mio_strategies\n"
        f"print([m for m in {modules!r} if importlib.util.find_spec(m) is not None])\n"
        "print(mio_strategies.__file__)\n",
        bare_site,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found, location = proc.stdout.splitlines()
    assert found == "[]"
    assert Path(location).resolve().is_relative_to(ROOT)


def test_the_quickstart_runs_without_extras(bare_site, tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    proc = _bare_python(code, bare_site, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "iterations, last active tasks" in proc.stdout


def test_the_main_job_runs_without_extras(bare_site, tmp_path):
    """`mio-strategies demo --pretrained`: the table, the verdicts and report.md; the plots are skipped by name."""
    proc = _bare_python(
        "import sys\nfrom mio_strategies.cli import main\n"
        "sys.exit(main(['demo', '--pretrained', '--no-progress', '--output', 'demo']))\n",
        bare_site,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "| identity |" in out and "| S+EP |" in out
    assert "above it on every task" in out
    assert "pip install mio-strategies[analysis]" in out  # the plots' skip says how to get them
    assert (tmp_path / "demo" / "report.md").is_file()
    assert (tmp_path / "demo" / "results.json").is_file()
    assert not list((tmp_path / "demo").glob("*.png"))  # no plot without matplotlib
