"""The output rule every command that writes follows.

1. An output is never an input, nor inside an input folder being read (an output folder inside an input folder is
   left out of the walk instead: :func:`check_output_dir`).
2. Outputs are written atomically: the data go to a staging file beside the final name, which is renamed onto it
   in one step once complete (:func:`atomic_path`). A reader sees the old file or the new one, never half of one.
3. Staging files are named ``.NAME.<pid>-<hex>.mmstage``: hidden, and with an extension no audio reader claims,
   so :func:`micmatch.audio.find_audio_files` never takes one for a recording. They are removed when the block
   fails, on SIGINT and SIGTERM (:func:`handle_termination` turns SIGTERM into an exception so cleanup runs), and
   by the next run (:func:`remove_stale_staging`) when the process that made them is gone (SIGKILL, power loss).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import signal
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from micmatch.errors import OutputError

#: Extension of every staging file.
STAGING_SUFFIX = ".mmstage"
#: Staging names: ``.NAME.<pid>-<hex>.mmstage``; and the names older versions used (``.NAME.<hex>.part.EXT``,
#: ``.NAME.<hex>.stage.wav``), so their leftovers are recognised and cleaned too.
_STAGING_RE = re.compile(r"^\..+\.(?:(?P<pid>\d+)-[0-9a-f]+\.mmstage|[0-9a-f]{8}\.(?:part|stage)\.[^.]+)$")

_live: set[Path] = set()  # staging files of this process that exist now


def is_staging(path: str | os.PathLike) -> bool:
    """True for a staging file's name (this version's or an older one's)."""
    return _STAGING_RE.match(Path(path).name) is not None


def staging_path(path: str | os.PathLike) -> Path:
    """A fresh staging name beside ``path`` (not created)."""
    path = Path(path)
    return path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{STAGING_SUFFIX}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_staging(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Remove staging files in ``folder`` left by processes that no longer run; returns what was removed.

    A staging file of a live process (another writer working now) is kept. Leftovers of older versions, which do
    not name their process, are removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    candidates = folder.rglob(".*") if recursive else folder.glob(".*")
    for p in candidates:
        m = _STAGING_RE.match(p.name)
        if m is None or not p.is_file():
            continue
        if m.group("pid") is not None and _pid_alive(int(m.group("pid"))):
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{path}: cannot write under {_file_ancestor(path)}: it is a file, not a folder") from None
    except NotADirectoryError:
        raise OutputError(f"{path}: cannot write under {_file_ancestor(path)}: it is a file, not a folder") from None
    except OSError as exc:
        raise OutputError(f"{path}: cannot create its folder: {exc.strerror or exc}") from None


def _file_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return path.parent


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging path beside ``path``; when the block succeeds it is renamed onto ``path`` in one step.

    If the block raises (or the process is interrupted by SIGINT, or SIGTERM under :func:`handle_termination`),
    the staging file is removed and ``path`` is untouched. Writers must give the format explicitly (the staging
    name ends in ``.mmstage``, not in the output's extension). OS errors (permission, disk full) become
    :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    _make_parent(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    # os.open with mode 0o666 applies the umask, so the output gets the permissions a plain write would give it
    # (tempfile.mkstemp would leave it private, 0o600). O_EXCL: never reuse another writer's staging file.
    while True:
        tmp_path = staging_path(path)
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    os.close(fd)
    _live.add(tmp_path)
    try:
        try:
            yield tmp_path
            os.replace(tmp_path, path)
        except OSError as exc:
            if isinstance(exc, OutputError):
                raise
            raise OutputError(f"{path}: cannot write: {_os_reason(exc)}") from None
    finally:
        _live.discard(tmp_path)
        with contextlib.suppress(OSError):
            tmp_path.unlink()


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or str(exc)


def remove_live_staging() -> None:
    """Remove this process's staging files now (a termination handler's last act)."""
    for p in list(_live):
        with contextlib.suppress(OSError):
            p.unlink()
        _live.discard(p)


class Terminated(KeyboardInterrupt):
    """SIGTERM received: raised in the main thread so ``finally`` blocks (staging cleanup) run."""


#: The signal received under :func:`handle_termination`, kept until the process ends: an exception raised by a
#: signal handler while a finalizer runs (``SoundFile.__del__``, say) is printed and dropped by Python, so batch
#: loops call :func:`raise_if_terminated` between items to stop anyway.
_received: int | None = None


def _interrupted(signum: int) -> KeyboardInterrupt:
    if signum == signal.SIGINT:
        return KeyboardInterrupt()
    return Terminated(f"terminated by signal {signum}")


def _on_signal(signum, frame):  # pragma: no cover - exercised through subprocess tests
    global _received
    _received = signum
    raise _interrupted(signum)


def raise_if_terminated() -> None:
    """Raise the interruption again if SIGINT or SIGTERM arrived (under :func:`handle_termination`) and its first
    exception was swallowed by a finalizer. Batch loops call it between items."""
    if _received is not None:
        raise _interrupted(_received)


def _quiet_unraisable(previous):
    """An ``sys.unraisablehook`` that drops the interruption raised by :func:`_on_signal` inside a finalizer
    (Python would print it with a traceback and go on); :func:`raise_if_terminated` raises it again where it can
    stop the batch. Anything else goes to the previous hook."""
    def hook(unraisable):
        if _received is not None and isinstance(unraisable.exc_value, KeyboardInterrupt):
            return
        previous(unraisable)
    return hook


def handle_termination():
    """Make SIGTERM raise :class:`Terminated` (a KeyboardInterrupt) in the main thread, as SIGINT does, and
    remember either signal for :func:`raise_if_terminated`.

    Returns the previous handlers (for :func:`restore_termination`), or None outside the main thread, where
    signals are left alone."""
    try:
        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:
        return None
    previous["unraisablehook"] = sys.unraisablehook
    sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)
    return previous


def restore_termination(previous) -> None:
    """Put back the handlers that :func:`handle_termination` replaced."""
    if previous is not None:
        previous = dict(previous)
        hook = previous.pop("unraisablehook", None)
        if hook is not None:
            sys.unraisablehook = hook
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)


# Where outputs may go -------------------------------------------------------------------------------------------
def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def check_output(output: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), *,
                 option: str = "-o") -> Path:
    """Refuse an output file that is an input, lies inside an input folder, is a folder, or lies under a file.

    Parameters
    ----------
    output : path
        The file a command will write.
    inputs : paths
        Every file and folder the command reads.
    option : str
        The option that named ``output``, for the message.
    """
    out = Path(output)
    if out.is_dir():
        raise OutputError(f"{option} {out}: is a folder; give a file name")
    ancestor = _file_ancestor(out)
    if ancestor.exists() and not ancestor.is_dir():
        raise OutputError(f"{option} {out}: cannot write under {ancestor}: it is a file, not a folder")
    for item in inputs:
        src = Path(item)
        if src.is_dir():
            if _inside(out, src):
                raise OutputError(f"{option} {out}: is inside the input folder {src}; write it elsewhere")
        elif out.exists() and _same(out, src) or out.resolve() == src.resolve():
            raise OutputError(f"{option} {out}: is an input of this command; refusing to overwrite it")
    if ancestor.is_dir() and not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {out}: the folder {ancestor} is not writable")
    return out


def check_output_dir(output_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike], *,
                     option: str = "-o") -> list[Path]:
    """Check an output folder against the inputs; returns folders to leave out of the input walk.

    An output folder that is an input folder would put outputs over the inputs: refused. An output
    folder inside an input folder is allowed, and returned so the walk skips it (a rerun then does not process
    its own outputs).
    """
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{option} {out}: is a file, not a folder")
    ancestor = _file_ancestor(out / "x")
    if ancestor.exists() and not ancestor.is_dir():
        raise OutputError(f"{option} {out}: cannot write under {ancestor}: it is a file, not a folder")
    exclude = []
    for item in inputs:
        src = Path(item)
        if src.is_dir():
            if _same(out, src):
                raise OutputError(f"{option} {out}: is the input folder {src}; the outputs would replace the inputs")
            if _inside(out, src):
                exclude.append(out)
    if ancestor.is_dir() and not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {out}: the folder {ancestor} is not writable")
    return exclude


def prepare_output(output: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), *,
                   option: str = "-o") -> Path:
    """:func:`check_output`, then remove stale staging files beside ``output``: a command's first step."""
    out = check_output(output, inputs, option=option)
    remove_stale_staging(out.parent)
    return out


def prepare_output_dir(output_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike], *,
                       option: str = "-o") -> list[Path]:
    """:func:`check_output_dir`, then remove stale staging files anywhere under it; returns folders to skip."""
    exclude = check_output_dir(output_dir, inputs, option=option)
    remove_stale_staging(output_dir, recursive=True)
    return exclude


#: Seconds a writer waits for another's lock on the same file before giving up with a clear error.
LOCK_TIMEOUT_S = 120.0


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file guarding ``path``: ``.NAME.lock`` beside it (hidden, never an audio file)."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def locked(*paths: str | os.PathLike, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive inter-process lock on each path (in a fixed order, so two writers cannot deadlock).

    Wrap every read-merge-write of a shared file in it (``measure --append``, ``profile --merge``): without it,
    concurrent writers each read the old file and the last rename wins, losing the others' updates.
    """
    from filelock import FileLock, Timeout

    unique = sorted({Path(p).resolve() for p in paths}, key=str)
    with contextlib.ExitStack() as stack:
        for p in unique:
            _make_parent(p)
            lock = FileLock(str(lock_path(p)))
            try:
                stack.enter_context(lock.acquire(timeout=timeout))
            except Timeout:
                raise OutputError(f"{p}: another micmatch process has held its lock for {timeout:.0f} s; "
                                  f"try again when it has finished") from None
            except OSError as exc:
                raise OutputError(f"{p}: cannot lock it: {exc.strerror or exc}") from None
        yield

