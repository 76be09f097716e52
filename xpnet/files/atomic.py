"""Atomic writes: a file replaced so that a reader sees the old one or the new one, never
half, and the temporaries of writers killed mid-save cleaned up by the next save."""

from __future__ import annotations

import os
import re
import secrets
import socket
import stat
import time
from pathlib import Path

from xpnet.errors import UserError


def writable_target(label: str, path, example: str) -> Path:
    """``path`` as a file a save can write: not a folder, in a folder that exists; else a
    one-line UserError starting with ``label`` and the path (``example``: a file name to suggest)."""
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{label} {path}: is a directory; give a file name such as {example}")
    if not target.parent.is_dir():
        raise UserError(f"{label} {path}: folder {target.parent} does not exist")
    return target


STALE_AFTER = 60.0  # seconds: a temporary whose writer cannot be asked is left to it this long
PID_REUSE_AFTER = 86400.0  # seconds: a temporary of a still-used pid on this machine is then stale anyway
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to the file ``path`` names (through a symlink: to the link's target) so
    that a reader sees the old file or the new one, never half: a temporary beside the target,
    fsync, rename over it, fsync of the folder. The file keeps the mode of the one it replaces,
    or gets a new file's (0666 less the umask). Stale temporaries of the same target, left by
    writers that died mid-save, are removed first (``_remove_stale_temporaries``)."""
    path = Path(path)
    target = Path(os.path.realpath(path))
    folder = target.parent
    if not folder.is_dir():
        raise UserError(f"{path}: folder {folder} does not exist")
    _remove_stale_temporaries(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp = _create_temporary(target)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.chmod(tmp, mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new empty file beside ``target`` named ``.NAME.HOST.PID.RANDOM.tmp``, opened for writing.
    It is created with mode 0666, so the umask (and a folder's default ACL) shape it as they
    shape any new file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def _remove_stale_temporaries(target: Path) -> None:
    """Delete the temporaries of ``target`` whose writer is gone (killed mid-save: kill -9, power
    loss). Ours are named ``.NAME.HOST.PID.RANDOM.tmp``: one written on this host is stale when
    no process PID exists here, or (the PID reused since) when unmodified for PID_REUSE_AFTER.
    One whose writer cannot be asked (another host sharing the folder, or the older
    ``.NAME.RANDOM.tmp`` names) is stale when unmodified for STALE_AFTER seconds: a live writer
    writes its whole file at once, then renames it. Errors are ignored: this is tidying."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(?:([A-Za-z0-9-]+)\.(\d+)\.)?\w+\.tmp")
    now = time.time()
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if not m:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if m[1] == HOST and m[2] is not None:
                stale = not _running(int(m[2])) or age > PID_REUSE_AFTER
            else:
                stale = age > STALE_AFTER
            if stale:
                os.unlink(entry.path)
        except OSError:
            pass


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (assumed so where that cannot be asked)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # someone else's process
        return True
    return pid > 0


# ---- loading ---------------------------------------------------------------------------------
