"""Output folders and files: one policy for every command that writes, replaces or locks one.

The rules (also on the documentation's "Safety" page):

* An output path that is a **symbolic link** is refused, with its target in the message: nothing is
  written through a link into somewhere else, and ``overwrite`` never empties a link's target.
* An existing **file** where a folder is expected is always refused (``overwrite`` included): it is left
  untouched.
* An existing non-empty folder is refused unless ``overwrite``; and ``overwrite`` only replaces a folder
  the library wrote itself, recognised by the marker file :data:`MARKER_NAME` that every output folder
  gets. A folder the library did not write is never emptied.
* New files and folders follow the user's umask, as any other tool's output (temporary files made with
  ``mkstemp``/``mkdtemp`` are 0600/0700 until they are renamed into place, then get the umask's mode,
  or the replaced file's or folder's own mode).
* :func:`output_lock` lets one process at a time write into a folder, keyed on the folder's resolved
  path (the same folder reached through a symlink or another relative path is the same lock).

Error messages name the fix in the spelling of the interface in use: ``overwrite=True`` from Python,
``--overwrite`` under :func:`cli_spelling` (which the command line sets).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Union

__all__ = [
    "MARKER_NAME",
    "OutputLockedError",
    "atomic_file",
    "check_output_dir",
    "check_output_file",
    "cli_spelling",
    "default_mode",
    "flag",
    "is_library_output",
    "lock_path",
    "output_lock",
    "prepare_output_dir",
    "remove_stale_staging",
    "remove_stale_tmp_files",
    "staging_dir",
    "umask",
]

PathLike = Union[str, "os.PathLike[str]"]

MARKER_NAME = ".mio-strategies"
"""The file that marks a folder as written by the library (what ``overwrite`` may replace)."""

_CLI = contextvars.ContextVar("mio_strategies_cli_spelling", default=False)

# how each option is written from Python and on the command line
_SPELLINGS = {
    "overwrite": ("overwrite=True", "--overwrite"),
    "resume": ("resume=True", "--resume"),
    "on_error": ("on_error='skip'", "--on-error skip"),
    "max_pixels": ("max_pixels=", "--max-pixels "),
}


@contextlib.contextmanager
def cli_spelling() -> Iterator[None]:
    """Within the block, messages name options as command-line flags (``--overwrite``) rather than as
    Python keywords (``overwrite=True``). The ``mio-strategies`` command runs every sub-command in it.

    Example:
        >>> with cli_spelling():
        ...     flag("overwrite")
        '--overwrite'
    """
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)


def flag(name: str, value: Any = None) -> str:
    """How the option ``name`` is written in the interface in use (see :func:`cli_spelling`).

    Args:
        name: ``"overwrite"``, ``"resume"``, ``"on_error"`` or ``"max_pixels"``.
        value: appended for options that take one (``max_pixels``).

    Example:
        >>> flag("overwrite"), flag("max_pixels", 0)
        ('overwrite=True', 'max_pixels=0')
    """
    python, cli = _SPELLINGS[name]
    text = cli if _CLI.get() else python
    return f"{text}{value}" if value is not None else text


# -- modes ---------------------------------------------------------------------------------------------
def umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # elsewhere: read it by setting it (briefly process-wide)
    os.umask(old)
    return old


def default_mode(folder: bool = False) -> int:
    """The mode a new file (0666) or folder (0777) gets under the umask, as ``open``/``mkdir`` give it."""
    return (0o777 if folder else 0o666) & ~umask()


def _mode_for(path: Path, folder: bool) -> int:
    """An existing ``path``'s own permission bits (a replacement keeps them), else the umask's default."""
    try:
        st = os.lstat(path)
    except OSError:
        return default_mode(folder)
    if stat.S_ISDIR(st.st_mode) == folder and not stat.S_ISLNK(st.st_mode):
        return stat.S_IMODE(st.st_mode)
    return default_mode(folder)


@contextlib.contextmanager
def atomic_file(path: PathLike, mode: str = "wb", *, fsync: bool = False,
                encoding: str | None = None) -> Iterator[IO[Any]]:
    """Write ``path`` atomically: into a temporary file beside it, renamed into place when the block ends.

    An interruption leaves the previous file intact and no half file under ``path`` (the temporary file,
    ``.<name>.<random>.tmp``, is removed; a SIGKILL can leave it, and the next run's cleanup removes it).
    The file gets the replaced file's permission bits, or the umask's default for a new one (not the
    0600 of ``mkstemp``).

    Args:
        path: the destination; its folder is created if missing.
        mode: ``"wb"`` or ``"w"``.
        fsync: flush the data to disk before the rename (checkpoints).
        encoding: for text mode (default UTF-8).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.txt")
        >>> with atomic_file(p, "w") as fh:
        ...     _ = fh.write("hello")
        >>> open(p).read()
        'hello'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _mode_for(path, folder=False))
        kw: dict[str, Any] = {"encoding": encoding or "utf-8"} if mode == "w" else {}
        with os.fdopen(fd, mode, **kw) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- checks --------------------------------------------------------------------------------------------
def _refuse_symlink(path: Path, what: str) -> None:
    if os.path.islink(path):
        target = os.readlink(path)
        raise FileExistsError(
            f"{what} {str(path)!r} is a symbolic link (to {target!r}): outputs are never written through a "
            f"link into somewhere else; give the real folder ({os.path.realpath(path)!r}) or another path"
        )


def is_library_output(path: PathLike) -> bool:
    """Whether ``path`` is a folder the library wrote (it holds the marker file :data:`MARKER_NAME`)."""
    p = Path(path)
    return not os.path.islink(p) and p.is_dir() and (p / MARKER_NAME).is_file() and not (p / MARKER_NAME).is_symlink()


def _contents(path: Path) -> list[Path]:
    return [c for c in path.iterdir() if c.name != MARKER_NAME]


def check_output_dir(path: PathLike, *, overwrite: bool, resume: bool = False, flag_name: str | None = None,
                     what: str = "output folder") -> Path:
    """Check, without changing anything, that ``path`` may be written as an output folder.

    Refused: a symbolic link; an existing file (always); an existing non-empty folder unless ``overwrite``
    or ``resume``; with ``overwrite``, a non-empty folder the library did not write (no marker file);
    a folder (or, for a new one, its nearest existing parent) that is not writable.

    Args:
        path: the output folder.
        overwrite: an existing folder the library wrote may be replaced.
        resume: an existing folder is continued (its contents kept).
        flag_name: how to name the overwrite option in the message (default: by interface, see
            :func:`flag`).
        what: what the folder is, for messages (``"run folder"``).

    Returns:
        ``Path(path)``.

    Raises:
        FileExistsError: a link, a file, or a non-empty folder that may not be replaced.
        PermissionError: the folder, or the parent it would be created in, is not writable.

    Example:
        >>> import tempfile
        >>> check_output_dir(tempfile.mkdtemp() + "/new", overwrite=False).name
        'new'
    """
    p = Path(path)
    fix = flag_name or flag("overwrite")
    _refuse_symlink(p, what)
    if p.exists() and not p.is_dir():
        kind = "is a file, not a folder" if p.is_file() else "exists and is not a folder"
        raise FileExistsError(
            f"{what} {str(p)!r} {kind}: it is left untouched ({fix} never replaces a file); give a folder path"
        )
    if p.is_dir():
        if _contents(p) and not resume:
            if not overwrite:
                hint = f", or {flag('resume')} to continue the run in it" if what == "run folder" else ""
                raise FileExistsError(f"{what} {str(p)!r} already exists and is not empty: pass {fix} to replace it{hint}")
            if not is_library_output(p):
                raise FileExistsError(
                    f"{what} {str(p)!r} was not written by mio-strategies (it has no {MARKER_NAME} marker), so "
                    f"{fix} will not delete its contents: empty or remove it yourself, or choose another folder"
                )
        if not os.access(p, os.W_OK | os.X_OK):
            raise PermissionError(
                f"{what} {str(p)!r} is not writable (mode {stat.S_IMODE(p.stat().st_mode):04o}): make it writable "
                "(chmod u+w) or choose another folder"
            )
    else:
        parent = p.absolute().parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise FileExistsError(f"cannot create {what} {str(p)!r}: {str(parent)!r} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot create {what} {str(p)!r}: folder {str(parent)!r} is not writable")
    return p


def _write_marker(folder: Path, command: str | None) -> None:
    marker = folder / MARKER_NAME
    if not marker.is_file():
        with atomic_file(marker, "w") as fh:
            fh.write(json.dumps({"written_by": "mio-strategies", "command": command}) + "\n")


def _clear(folder: Path) -> None:
    """Remove everything in ``folder`` but its marker; links are removed, never followed."""
    for child in _contents(folder):
        if child.is_symlink() or not child.is_dir():
            child.unlink()
        else:
            shutil.rmtree(child)


def prepare_output_dir(path: PathLike, *, overwrite: bool, resume: bool = False, flag_name: str | None = None,
                       what: str = "output folder", command: str | None = None) -> Path:
    """Create (or, with ``overwrite``, empty) an output folder, after :func:`check_output_dir`'s checks.

    A replaced folder keeps its own permissions (it is emptied, not deleted); a new one follows the umask.
    The folder gets the marker file :data:`MARKER_NAME`, so a later ``overwrite`` may replace it.

    Args:
        path: the output folder.
        overwrite: an existing folder the library wrote is emptied (see :func:`check_output_dir`).
        resume: an existing folder is kept as it is.
        flag_name: how to name the overwrite option in messages (default: by interface).
        what: what the folder is, for messages.
        command: recorded in the marker (``"train"``, ``"degrade"``...).

    Returns:
        ``Path(path)``, existing, holding the marker.

    Raises:
        FileExistsError, PermissionError: as :func:`check_output_dir` (nothing is changed then).

    Example:
        >>> import tempfile
        >>> out = prepare_output_dir(tempfile.mkdtemp() + "/results", overwrite=False)
        >>> is_library_output(out)
        True
    """
    p = check_output_dir(path, overwrite=overwrite, resume=resume, flag_name=flag_name, what=what)
    if p.is_dir() and overwrite and not resume:
        _clear(p)
    p.mkdir(parents=True, exist_ok=True)
    _write_marker(p, command)
    return p


def check_output_file(path: PathLike, *, overwrite: bool, flag_name: str | None = None, what: str = "output file",
                      recognise: Callable[[Path], bool] | None = None) -> Path:
    """Check that ``path`` may be written as an output file: not a link, not a folder, not an existing
    file unless ``overwrite`` (and, with ``recognise``, only a file it recognises as the library's).

    Raises:
        FileExistsError: a link, a folder, an existing file without ``overwrite``, or one ``recognise``
            rejects.

    Example:
        >>> import tempfile
        >>> check_output_file(tempfile.mkdtemp() + "/clf.pt", overwrite=False).name
        'clf.pt'
    """
    p = Path(path)
    fix = flag_name or flag("overwrite")
    _refuse_symlink(p, what)
    if p.is_dir():
        raise FileExistsError(f"{what} {str(p)!r} is a folder: give a file name (e.g. {str(p / 'out.pt')!r})")
    if p.exists():
        if not overwrite:
            raise FileExistsError(f"{what} {str(p)!r} already exists: pass {fix} to replace it")
        if recognise is not None and not recognise(p):
            raise FileExistsError(
                f"{what} {str(p)!r} was not written by mio-strategies, so {fix} will not replace it: "
                "remove it yourself or choose another name"
            )
    return p


@contextlib.contextmanager
def staging_dir(final: PathLike, command: str | None = None) -> Iterator[Path]:
    """A temporary sibling folder ``.<name>.tmp-<random>`` to build ``final`` in, removed if the block fails.

    It holds the marker and gets the mode ``final`` will have (the replaced folder's, or the umask's
    default), so renaming it into place gives a normal output folder (not ``mkdtemp``'s 0700).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        os.chmod(tmp, _mode_for(final, folder=True))
        _write_marker(tmp, command)
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_staging(final: PathLike) -> list[Path]:
    """Remove the ``.<name>.tmp-*`` / ``.<name>.old-*`` siblings of ``final`` that a killed earlier run left.

    Only folders holding the library's marker are removed. Call it while holding :func:`output_lock`
    on ``final`` (then no other run of the library is building one).

    Returns:
        The removed folders.
    """
    final = Path(final)
    removed: list[Path] = []
    if not final.parent.is_dir():
        return removed
    for sib in final.parent.iterdir():
        if (sib.name.startswith((f".{final.name}.tmp-", f".{final.name}.old-"))
                and is_library_output(sib)):
            shutil.rmtree(sib, ignore_errors=True)
            removed.append(sib)
    return removed


def remove_stale_tmp_files(folder: PathLike, names: tuple[str, ...]) -> list[Path]:
    """Remove ``.<name>.*.tmp`` files that :func:`atomic_file` left in ``folder`` for the given file names
    (an earlier run killed while writing one). Call it while holding :func:`output_lock`."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for f in folder.iterdir():
        if f.name.endswith(".tmp") and any(f.name.startswith(f".{n}.") for n in names) and f.is_file() \
                and not f.is_symlink():
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed


# -- the lock ------------------------------------------------------------------------------------------
class OutputLockedError(FileExistsError):
    """Another process holds the lock of an output folder."""


def _proc_start(pid: int) -> str | None:
    """A token of when process ``pid`` started (Linux), to tell a reused pid from the lock's holder."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    now = _proc_start(pid)
    return start is None or now is None or now == start


def _lock_info() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _proc_start(os.getpid()), "time": time.time()}


def _read_info(lock: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None


def _stale(info: dict[str, Any] | None) -> bool:
    """A lock whose holder is gone: an unreadable one (while no local process holds its flock) or one of a
    dead process on this host. A lock of another host is never taken as stale (its pid means nothing here)."""
    if info is None:
        return True
    return info.get("host") == socket.gethostname() and not _alive(info["pid"], info.get("start"))


def _try_flock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: the lock file alone
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:  # a filesystem without flock support: the lock file alone decides
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            return True
        raise
    return True


def _create(lock: Path, info: dict[str, Any]) -> bool:
    """Create ``lock`` holding ``info``, atomically and only if it does not exist: the content is written to
    a unique file first, then hard-linked to the lock's name (``link`` fails if the name exists, also over
    NFS), so a lock file is never seen empty. Falls back to ``O_CREAT | O_EXCL`` where links are refused."""
    tmp = lock.with_name(f"{lock.name}.{info['host']}.{info['pid']}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps(info), encoding="utf-8")
    try:
        os.link(tmp, lock)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(info))
        return True
    finally:
        tmp.unlink(missing_ok=True)


def lock_path(path: PathLike) -> Path:
    """The lock file of output folder ``path``: ``.<name>.lock`` beside the folder's resolved path."""
    real = Path(os.path.realpath(path))
    return real.parent / f".{real.name}.lock"


@contextlib.contextmanager
def output_lock(path: PathLike, *, activity: str = "written", alternative: str = "write into another folder"
                ) -> Iterator[Path]:
    """Hold the exclusive lock of output folder ``path`` while the block runs.

    The lock is the file ``.<name>.lock`` beside the folder's **resolved** path (``os.path.realpath``), so
    the folder reached through a symlink or another relative path takes the same lock. It is created
    atomically (written to a unique file, then hard-linked to its name: the classic lock that also works
    over NFS) with the holder's pid and host, and held with ``flock`` as well on filesystems that support it.
    A lock left by a killed process of this host (its pid gone, or reused by another process) is stale and
    taken over; a lock from another host is never taken over, since its pid cannot be checked here: the
    message names the host and pid, and the file to remove once that process is known to be gone.
    ``flock`` alone would not do on NFS (it is emulated with byte-range locks, or not supported); the lock
    file works on any filesystem with atomic ``link``.

    Args:
        path: the output folder (it need not exist; its parent is created).
        activity: for the message (``"trained into"``).
        alternative: the other way out, for the message.

    Yields:
        The lock file's path.

    Raises:
        OutputLockedError (a FileExistsError): another process holds the lock.

    Example:
        >>> import tempfile
        >>> with output_lock(tempfile.mkdtemp() + "/run") as lock:
        ...     lock.name
        '.run.lock'
    """
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    info = _lock_info()
    fd = None
    for _ in range(20):
        if _create(lock, info):
            fd = os.open(lock, os.O_RDWR)
            deadline = time.monotonic() + 2.0  # a competitor checking staleness holds the flock a moment
            while not _try_flock(fd):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            break
        try:
            other = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            continue  # released meanwhile: try again
        try:
            held = _read_info(lock)
            if not _try_flock(other):
                raise _locked(path, lock, held, activity, alternative)
            try:
                same = os.fstat(other).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                continue  # replaced meanwhile: look again
            held = _read_info(lock)
            if not _stale(held):
                raise _locked(path, lock, held, activity, alternative)
            lock.unlink()  # stale, and we hold its flock: nobody else is removing it
        finally:
            os.close(other)
    if fd is None:
        raise _locked(path, lock, _read_info(lock), activity, alternative)
    try:
        yield lock
    finally:
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                lock.unlink()
        except FileNotFoundError:
            pass
        os.close(fd)


def _locked(path: PathLike, lock: Path, held: dict[str, Any] | None, activity: str, alternative: str
            ) -> OutputLockedError:
    who = f"pid {held['pid']} on host {held.get('host')!r}" if held else "another process"
    remote = held is not None and held.get("host") != socket.gethostname()
    tail = (f"; if that process is gone (another machine's lock cannot be checked from here), remove {str(lock)!r}"
            if remote else "")
    return OutputLockedError(
        f"{str(path)!r} is being {activity} by another process (it holds {str(lock)!r}): wait for it to finish or "
        f"stop it ({who}), or {alternative}{tail}"
    )
