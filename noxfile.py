"""Nox sessions: `nox -s tests -- <pytest args>`, `nox -s lint`, `nox -s demo`, `nox -s benchmarks`, `nox -s docs`.

`nox -s tests -- -m "not slow"` runs the fast selection (the tests that tests/conftest.py does not mark slow).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"

# The pinned torch build is installed first, alone, so that no later dependency resolution can pull
# another torch (see README, "Install"; .ci/install does the same).
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]


def _install(session: nox.Session) -> None:
    session.install(*TORCH)
    session.install("--no-build-isolation", "basicsr==1.4.2")
    session.install("-e", ".[all,test,docs]")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Run the test suite; extra arguments go to pytest (`nox -s tests -- -m "not slow"`: the fast selection)."""
    _install(session)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """The import contracts (lint-imports), ruff (lint and format check) and mypy, as CI runs them."""
    _install(session)
    session.run("bash", ".ci/lint", *session.posargs)


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """Run the main job (the demo) on the embedded images."""
    _install(session)
    session.run("mio-strategies", "demo", *session.posargs)


@nox.session(python="3.11")
def benchmarks(session: nox.Session) -> None:
    """Run one benchmark script: `nox -s benchmarks -- benchmarks/sampler_overhead.py`."""
    _install(session)
    if not session.posargs:
        session.error("name a benchmark script, e.g. `nox -s benchmarks -- benchmarks/sampler_overhead.py`")
    session.run("python", *session.posargs)


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly into `site/` (`nox -s docs -- serve` serves it instead)."""
    _install(session)
    env = {"DISABLE_MKDOCS_2_WARNING": "true", "NO_MKDOCS_2_WARNING": "1"}
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", "--strict", *session.posargs[1:], env=env)
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs, env=env)
