"""One output policy for every command: no file replaced, no link followed, no foreign folder emptied,
one writer per folder (keyed on the resolved folder), umask modes, no leftovers of killed runs."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from mio_strategies.cli import main
from mio_strategies.data import (
    build_testset,
    embedded_image_paths,
    read_image,
    write_png,
)
from mio_strategies.utils.outputs import (
    MARKER_NAME,
    OutputLockedError,
    atomic_file,
    check_output_dir,
    cli_spelling,
    flag,
    lock_path,
    output_lock,
    prepare_output_dir,
)

posix = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions, links and locks")

TINY = ["--set", "backbone=srresnet_tiny", "--set", "backbone_kwargs.num_feat=4", "--set", "backbone_kwargs.num_block=1",
        "--set", "periods=7", "--set", "period_iters=1", "--set", "batch_size=2", "--set", "patch_size=16",
        "--set", "val_size=24", "--set", "prompt_size=16"]


@pytest.fixture(scope="module")
def imgs(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    for p in embedded_image_paths()[:2]:
        write_png(read_image(p)[:, :32, :32], d / p.name)
    return d


@pytest.fixture(scope="module")
def made(imgs, tmp_path_factory):
    """A test set and a finished tiny run to evaluate and analyse."""
    root = tmp_path_factory.mktemp("made")
    build_testset(imgs, root / "set", tasks="N")
    assert main(["train", "--config", "cpu_demo", *TINY, "--output", str(root / "run"), "--no-progress"]) == 0
    return root


def _commands(made, imgs, out):
    """Every command that writes an output folder, writing to ``out``."""
    ck, ts = str(made / "run" / "checkpoint.pt"), str(made / "set")
    return {
        "degrade": ["degrade", "--input", str(imgs), "--tasks", "N", "--output", out],
        "train": ["train", "--config", "cpu_demo", *TINY, "--output", out, "--no-progress"],
        "eval": ["eval", "--checkpoint", ck, "--testset", ts, "--output", out],
        "demo": ["demo", "--set", "period_iters=1", "--output", out, "--no-progress"],
        "analyze": ["analyze", "--checkpoint", ck, "--testset", ts, "--module", "", "--method", "pca",
                    "--output-dir", out, "--no-progress"],
    }


COMMANDS = ["degrade", "train", "eval", "demo", "analyze"]


def _tree(root):
    return sorted((str(p.relative_to(root)), p.read_bytes() if p.is_file() else None) for p in root.rglob("*"))


# ----------------------------------------------------------------------------------- 1. data loss
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("overwrite", [False, True])
def test_no_command_replaces_an_existing_file_with_a_folder(command, overwrite, made, imgs, tmp_path, capsys):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    argv = _commands(made, imgs, str(target))[command] + (["--overwrite"] if overwrite else [])
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "precious.txt' is a file, not a folder: it is left untouched (--overwrite never replaces a file)" in err
    assert target.read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["precious.txt"]


def test_file_outputs_refuse_a_folder_and_a_foreign_file(made, tmp_path, capsys):
    (tmp_path / "dir").mkdir()
    base = ["train-classifier", "--steps", "1", "--batch-size", "2", "--crop", "16", "--width", "4", "--no-progress",
            "--device", "cpu"]
    assert main(base + ["--output", str(tmp_path / "dir"), "--overwrite"]) == 2
    assert "dir' is a folder: give a file name" in capsys.readouterr().err
    (tmp_path / "notes.pt").write_text("my notes")
    assert main(base + ["--output", str(tmp_path / "notes.pt"), "--overwrite"]) == 2
    assert "notes.pt' was not written by mio-strategies, so --overwrite will not replace it" in capsys.readouterr().err
    assert (tmp_path / "notes.pt").read_text() == "my notes"
    assert main(base + ["--output", str(tmp_path / "clf.pt")]) == 0
    assert main(base + ["--output", str(tmp_path / "clf.pt"), "--overwrite"]) == 0  # its own file: replaced


# ----------------------------------------------------------------------------------- 2. symlinks
@posix
@pytest.mark.parametrize("command", COMMANDS)
def test_no_command_writes_through_a_symlinked_output(command, made, imgs, tmp_path, capsys):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "data.bin").write_bytes(b"\x00" * 10)
    (target / MARKER_NAME).write_text("{}")  # even a folder the library wrote is not reached through a link
    link = tmp_path / "out"
    link.symlink_to(target)
    before = _tree(target)
    for extra in ([], ["--overwrite"]):
        assert main(_commands(made, imgs, str(link))[command] + extra) != 0
        err = capsys.readouterr().err
        assert f"out' is a symbolic link (to {str(target)!r}): outputs are never written through a link" in err
        assert "Traceback" not in err
    assert _tree(target) == before and link.is_symlink()


@posix
def test_a_symlinked_weights_or_classifier_file_is_refused(tmp_path):
    from mio_strategies.harness import export_weights

    (tmp_path / "real.pt").write_text("x")
    (tmp_path / "link.pt").symlink_to(tmp_path / "real.pt")
    with pytest.raises(FileExistsError, match=r"link.pt' is a symbolic link \(to "):
        export_weights(tmp_path / "nothing.pt", tmp_path / "link.pt", overwrite=True)
    assert (tmp_path / "real.pt").read_text() == "x"


# ----------------------------------------------------------------------------------- foreign folders
@pytest.mark.parametrize("command", COMMANDS)
def test_overwrite_never_empties_a_folder_the_library_did_not_write(command, made, imgs, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert main(_commands(made, imgs, str(out))[command]) != 0
    assert "already exists and is not empty: pass --overwrite to replace it" in capsys.readouterr().err
    assert main(_commands(made, imgs, str(out))[command] + ["--overwrite"]) != 0
    assert (f"mine' was not written by mio-strategies (it has no {MARKER_NAME} marker), so --overwrite will not "
            "delete its contents") in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["thesis.tex"]


def test_overwrite_replaces_the_librarys_own_folder(imgs, tmp_path):
    out = tmp_path / "set"
    build_testset(imgs, out, tasks="N")
    with pytest.raises(FileExistsError, match=r"already exists and is not empty: pass overwrite=True to replace it"):
        build_testset(imgs, out, tasks="J")
    build_testset(imgs, out, tasks="J", overwrite=True)
    assert sorted(os.listdir(out)) == [MARKER_NAME, "GT", "jpeg", "manifest.json"]


def test_each_interface_names_its_own_flag(tmp_path):
    out = tmp_path / "o"
    (out / "x").parent.mkdir()
    (out / "x").write_text("1")
    with pytest.raises(FileExistsError, match=r"pass overwrite=True to replace it"):
        check_output_dir(out, overwrite=False)
    with cli_spelling(), pytest.raises(FileExistsError, match=r"pass --overwrite to replace it"):
        check_output_dir(out, overwrite=False)
    assert flag("overwrite") == "overwrite=True"


# ----------------------------------------------------------------------------------- 3. locks
@posix
def test_the_lock_is_keyed_on_the_resolved_folder(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    spellings = [tmp_path / "real" / "run", tmp_path / "alias" / "run", Path("real/run"), Path("./alias/../real/run")]
    assert len({lock_path(p) for p in spellings}) == 1
    with output_lock(spellings[0]):
        for other in spellings[1:]:
            with pytest.raises(OutputLockedError, match=rf"is being written by another process .*pid {os.getpid()}"):
                with output_lock(other):
                    pass
    assert not lock_path(spellings[0]).exists()


@posix
def test_two_trainers_through_a_symlinked_parent_are_refused(made, tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    with output_lock(real / "run", activity="trained into"):
        assert main(["train", "--config", "cpu_demo", *TINY, "--output", str(tmp_path / "alias" / "run"),
                     "--no-progress"]) == 2
    assert "is being trained into by another process" in capsys.readouterr().err
    assert not (real / "run").exists()


@posix
def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    lock = lock_path(tmp_path / "run")
    lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "start": None}))
    with output_lock(tmp_path / "run") as held:
        assert json.loads(held.read_text())["pid"] == os.getpid()
    assert not lock.exists()
    lock.write_text("")  # an empty lock nobody holds (e.g. a crash of another tool) is stale too
    with output_lock(tmp_path / "run"):
        pass


@posix
def test_a_lock_of_another_host_is_never_taken_over(tmp_path):
    lock = lock_path(tmp_path / "run")
    lock.write_text(json.dumps({"pid": 1, "host": "gpu-node-17", "start": None}))
    with pytest.raises(OutputLockedError, match=r"pid 1 on host 'gpu-node-17'.*if that process is gone .*remove"):
        with output_lock(tmp_path / "run"):
            pass
    assert lock.exists()


@posix
def test_only_one_of_many_processes_gets_the_lock(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from mio_strategies.utils.outputs import output_lock, OutputLockedError
        time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
        try:
            with output_lock({str(tmp_path / "run")!r}):
                time.sleep(1.5)
            print("got")
        except OutputLockedError:
            print("refused")
    """)
    import time

    start = str(time.time() + 2.0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", script, start], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs == ["got", "refused", "refused", "refused"]


# ----------------------------------------------------------------------------------- 8. permissions, leftovers
@posix
def test_outputs_follow_the_umask(imgs, tmp_path):
    old = os.umask(0o022)
    try:
        build_testset(imgs, tmp_path / "set", tasks="N")
        with atomic_file(tmp_path / "a.txt", "w") as fh:
            fh.write("x")
        from mio_strategies.harness import save_checkpoint

        save_checkpoint({"x": 1}, tmp_path / "run" / "checkpoint.pt")
    finally:
        os.umask(old)
    def mode(p):
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(tmp_path / "set") == 0o755
    assert mode(tmp_path / "set" / "manifest.json") == 0o644
    assert mode(tmp_path / "set" / "noise") == 0o755
    assert all(mode(p) == 0o644 for p in (tmp_path / "set" / "noise").iterdir())
    assert mode(tmp_path / "a.txt") == 0o644 and mode(tmp_path / "run" / "checkpoint.pt") == 0o644


@posix
def test_overwrite_keeps_the_folders_own_mode(imgs, tmp_path):
    out = tmp_path / "set"
    build_testset(imgs, out, tasks="N")
    os.chmod(out, 0o750)
    build_testset(imgs, out, tasks="J", overwrite=True)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    run = prepare_output_dir(tmp_path / "run", overwrite=False)
    (run / "a").write_text("1")
    os.chmod(run, 0o751)
    prepare_output_dir(run, overwrite=True)
    assert stat.S_IMODE(run.stat().st_mode) == 0o751 and sorted(os.listdir(run)) == [MARKER_NAME]


@posix
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into any folder")
def test_a_read_only_output_folder_is_one_clear_line(imgs, tmp_path, capsys):
    out = tmp_path / "ro"
    build_testset(imgs, out, tasks="N")
    os.chmod(out, 0o555)
    try:
        assert main(["degrade", "--input", str(imgs), "--tasks", "N", "--output", str(out), "--overwrite"]) == 1
        assert "ro' is not writable (mode 0555): make it writable" in capsys.readouterr().err
        assert main(["train", "--config", "cpu_demo", *TINY, "--output", str(out), "--overwrite", "--no-progress"]) == 2
        assert "is not writable (mode 0555)" in capsys.readouterr().err
        assert stat.S_IMODE(out.stat().st_mode) == 0o555
    finally:
        os.chmod(out, 0o755)


def test_a_read_only_folder_is_refused_by_the_check(tmp_path, monkeypatch):
    # the same check as above, where the tests run as root (who may write anywhere): access() says no
    out = prepare_output_dir(tmp_path / "o", overwrite=False)
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(PermissionError, match=r"o' is not writable \(mode 0\d{3}\): make it writable"):
        check_output_dir(out, overwrite=True)


def test_a_killed_degrade_leaves_nothing_after_the_next_run(imgs, tmp_path):
    out = tmp_path / "set"
    for name in (".set.tmp-k1", ".set.old-k2"):  # what a SIGKILL mid-build / mid-swap leaves
        (tmp_path / name / "GT").mkdir(parents=True)
        (tmp_path / name / MARKER_NAME).write_text("{}")
    (tmp_path / ".set.tmp-notours").mkdir()  # not the library's: left alone
    build_testset(imgs, out, tasks="N")
    assert sorted(os.listdir(tmp_path)) == [".set.tmp-notours", "set"]


@posix
def test_sigterm_during_degrade_leaves_no_staging_folder(tmp_path):
    src = tmp_path / "imgs"
    for i in range(40):
        write_png(torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(i)), src / f"{i:02d}.png")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "mio_strategies", "degrade", "--input", str(src), "--output",
                             str(tmp_path / "out")], env=env, stderr=subprocess.PIPE, text=True)
    import time

    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith(".out.tmp-") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted" in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["imgs"]
