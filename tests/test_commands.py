"""Every shell command the README and docs show names something that exists; `make` builds the environment once."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# commands of the environment itself, not of this project
GENERIC = {"python3", ".", "source", "cd", "git", "pip", "export", "ls", "cat", "mkdir"}
# the static checks of .ci/lint: command -> (its package in an extra, its section of pyproject.toml)
STATIC_CHECKS = {"ruff": ("ruff", "ruff"), "mypy": ("mypy", "mypy"), "lint-imports": ("import-linter", "importlinter")}


def _commands(text: str) -> list[list[str]]:
    """The commands of a page's bash blocks, each as its tokens (comments, continuations, && and | handled)."""
    out = []
    for block in re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", text, flags=re.S):
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            line = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
            for part in re.split(r"&&|\|\||;|\|", line):
                if part.strip():
                    out.append(shlex.split(part))
    return out


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from mio_strategies.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):(?!=)", (ROOT / "Makefile").read_text(), flags=re.M))


def _problem(tokens: list[str], subparsers: dict[str, argparse.ArgumentParser]) -> str | None:
    """Why a command would not run as written, or None."""
    head, args = tokens[0], tokens[1:]
    if head in GENERIC:
        return None
    if head == "make":
        targets = [a for a in args if "=" not in a and not a.startswith("-")]
        missing = [t for t in targets if t not in _make_targets()]
        return f"no make target {missing}" if missing else None
    if head in ("mio-strategies", "torchrun"):
        if head == "torchrun":  # torchrun ... -m mio_strategies SUB ...
            if "-m" not in args or args[args.index("-m") + 1] != "mio_strategies":
                return "torchrun of something other than -m mio_strategies"
            args = args[args.index("-m") + 2 :]
        if not args or args[0] not in subparsers:
            return f"no sub-command {args[:1]} (have {sorted(subparsers)})"
        sub, name, rest = subparsers[args[0]], args[0], args[1:]
        while rest:  # nested sub-commands (`mio-strategies data check`)
            nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
            if not nested or rest[0] not in nested[0].choices:
                break
            sub, name, rest = nested[0].choices[rest[0]], f"{name} {rest[0]}", rest[1:]
        help_text = sub.format_help()
        flags = {opt for action in sub._actions for opt in action.option_strings}
        bad = [a.split("=")[0] for a in rest if a.startswith("-") and a.split("=")[0] not in flags]
        bad += [a.split("=")[0] for a in rest if a.startswith("--") and a.split("=")[0] not in help_text]
        return f"`{head} {name}` has no option {sorted(set(bad))}" if bad else None
    if head in ("python", "bash"):
        if args[:1] == ["-m"]:
            return None if importlib.util.find_spec(args[1]) else f"no module {args[1]}"
        return None if (ROOT / args[0]).is_file() else f"no file {args[0]}"
    if head == "nox":
        sessions = set(re.findall(r"^def (\w+)\(session", (ROOT / "noxfile.py").read_text(), flags=re.M))
        named = [args[i + 1] for i, a in enumerate(args) if a == "-s"]
        missing = [s for s in named if s not in sessions]
        return f"no nox session {missing}" if missing else None
    if head in STATIC_CHECKS:  # the tools of .ci/lint: declared in an extra and configured in pyproject.toml
        pyproject = (ROOT / "pyproject.toml").read_text()
        package, section = STATIC_CHECKS[head]
        missing = [what for what in (f'"{package}', f"[tool.{section}") if what not in pyproject]
        return f"{head} is not declared and configured in pyproject.toml ({missing})" if missing else None
    return f"unknown command {head!r}: teach tests/test_commands.py what it needs"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_shell_command_of_the_docs_names_what_exists(page):
    subparsers = _subparsers()
    problems = [f"{shlex.join(c)}: {why}" for c in _commands(page.read_text()) if (why := _problem(c, subparsers))]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_a_wrong_command():
    subparsers = _subparsers()
    assert (
        _problem(["mio-strategies", "restore", "x.png", "--tiles", "3"], subparsers)
        == "`mio-strategies restore` has no option ['--tiles']"
    )
    assert _problem(["mio-strategies", "restor"], subparsers).startswith("no sub-command ['restor']")
    assert (
        _problem(["mio-strategies", "data", "check", "--protocol", "x", "--nope"], subparsers)
        == "`mio-strategies data check` has no option ['--nope']"
    )
    assert _problem(["make", "demos"], subparsers) == "no make target ['demos']"
    assert _problem(["nox", "-s", "test"], subparsers) == "no nox session ['test']"
    assert _problem(["python", "examples/nowhere.py"], subparsers) == "no file examples/nowhere.py"
    assert _problem(["nox_", "-s"], subparsers).startswith("unknown command")
    assert _problem(["ruff", "check", "mio_strategies"], subparsers) is None
    assert _commands("```bash\nmake demo   # a comment\nmio-strategies eval \\\n  --output x && make test\n```") == [
        ["make", "demo"],
        ["mio-strategies", "eval", "--output", "x"],
        ["make", "test"],
    ]


def test_the_readme_shows_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    two = re.search(r"## The two commands\n.*?```bash\n(.*?)```", readme, flags=re.S)
    assert two and [c[:2] for c in _commands(f"```bash\n{two.group(1)}```")] == [["make", "demo"], ["make", "test"]]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == "make test"  # exactly the README's test command


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_make_builds_the_environment_once_and_again_only_after_a_change(tmp_path):
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "install", tmp_path / ".ci" / "install")
    log = tmp_path / "installs.log"
    # the real venv (python3 -m venv) but a stand-in for the long .ci/install, which runs inside it
    install = f"INSTALL=python -c \"import sys; open('{log}', 'a').write(sys.prefix + chr(10))\""

    def make(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["make", f"PYTHON={sys.executable}", install, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )

    # run as a top-level make even when the suite itself runs under `make test` (as in CI): an inherited
    # MAKELEVEL makes make print "Entering directory" lines into the dry run
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    res = make("venv")
    assert res.returncode == 0, res.stderr
    venv = tmp_path / ".venv"
    assert log.read_text().splitlines() == [str(venv)]  # installed into the new venv, activated
    assert (venv / ".mio-installed").is_file()
    assert make("venv").returncode == 0 and len(log.read_text().splitlines()) == 1  # up to date: nothing done
    stamp = venv / ".mio-installed"
    os.utime(stamp, (os.path.getmtime(tmp_path / "pyproject.toml") - 10,) * 2)  # pyproject changed after the install
    assert make("venv").returncode == 0 and len(log.read_text().splitlines()) == 2  # pyproject changed: again
    dry = make("-n", "test", "demo", "demo-train")
    assert dry.stdout.splitlines() == [
        ".venv/bin/python -m pytest ",
        ".venv/bin/mio-strategies demo --pretrained ",
        ".venv/bin/mio-strategies demo ",
    ]
    assert make("-n", "test", "ARGS=-k prompt").stdout.strip() == ".venv/bin/python -m pytest -k prompt"
    assert make("-n", "test-fast", "ARGS=-x").stdout.strip() == '.venv/bin/python -m pytest -m "not slow" -x'
    old = tmp_path / "python-too-old"
    old.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python 3.8.10'; exit 1\n")
    old.chmod(0o755)
    os.utime(stamp, (os.path.getmtime(tmp_path / "pyproject.toml") - 10,) * 2)
    res = subprocess.run(["make", f"PYTHON={old}", "venv"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode != 0 and "needs Python 3.10+" in res.stderr and "Python 3.8.10" in res.stderr
