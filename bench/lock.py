"""Lock files: one job per config (a lock per config hash in the results folder), and one owner per
checkpoint folder (:mod:`bench.resume`).

Two sweeps started together (on one machine or on several sharing a filesystem) would otherwise
both run every job. Before a job runs, it takes ``results/locks/<task>-<config_hash>.lock``; a job
that finds the lock held by a live process skips its config, as it would skip a completed one.

Safe on NFS: the lock is taken by ``link()``-ing a private temporary file to the lock name, which
is atomic on every NFS version (``O_EXCL`` is not on NFSv2), and a lost reply is detected by the
temporary file's link count. A lock whose holder died (same host, pid gone or reused) is stale and
broken; a lock held from another host cannot be checked from here and is left alone: the message
names the file to delete if that host is known to be down.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (empty where /proc does not have it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a live holder from a reused pid), where /proc has it."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else None


def _alive(holder: dict) -> bool:
    """Whether the process that wrote ``holder`` still runs (only decidable on this host)."""
    if not holder.get("host"):  # not a lock this module wrote
        return False
    if holder["host"] != socket.gethostname():
        return True
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a live process of another user
        return True
    if _stat(pid)[:1] == ["Z"]:  # exited, not yet reaped by its parent: it will never release the lock
        return False
    return holder.get("start") is None or holder.get("start") == _start_time(pid)


def _is_me(holder: dict) -> bool:
    return (holder.get("host") == socket.gethostname() and holder.get("pid") == os.getpid()
            and holder.get("start") == _start_time(os.getpid()))


class FileLock:
    """A lock file at ``path`` holding the owner's pid, host and start time (re-entrant for this object;
    exclusive between objects, even in one process)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.held = False

    def acquire(self) -> dict | None:
        """Take the lock; return ``None`` on success (or when this object holds it already), or the live
        holder's record when it is taken."""
        if self.held and _is_me(self._read() or {}):
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_time(os.getpid()),
              "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        for _ in range(5):
            if self._link(me):
                self.held = True
                return None
            holder = self._read()
            if holder is None:  # released (or half-written by a crash) between our link and read
                continue
            if _alive(holder):
                return holder
            self._break(holder)
        return self._read() or {"pid": None, "host": "unknown"}

    def _link(self, me: dict) -> bool:
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}")
        tmp.write_text(json.dumps(me))
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:
            # A lost NFS reply can report failure for a link that was made: the link count says.
            return os.stat(tmp).st_nlink == 2
        finally:
            tmp.unlink()

    def _read(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def _break(self, stale: dict) -> None:
        """Remove a dead holder's lock without removing a fresh one taken in the meantime."""
        aside = self.path.with_name(f".{self.path.name}.stale.{secrets.token_hex(6)}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            if json.loads(aside.read_text()) != stale:  # someone re-took it first: give it back
                with contextlib.suppress(FileExistsError):
                    os.link(aside, self.path)
        except (OSError, ValueError):
            pass
        aside.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock file if this process still holds it (never a lock taken since by another)."""
        if self.held and _is_me(self._read() or {}):
            self.path.unlink(missing_ok=True)
        self.held = False


class ConfigLock(FileLock):
    """``results/locks/<task>-<config_hash>.lock``: one job per config."""

    def __init__(self, results_dir: str | os.PathLike, task: str, config_hash: str) -> None:
        super().__init__(Path(results_dir) / "locks" / f"{task}-{config_hash}.lock")


@contextlib.contextmanager
def config_lock(results_dir: str | os.PathLike, task: str, config_hash: str,
                enabled: bool = True) -> Iterator[dict | None]:
    """Hold the config's lock for the block; yields ``None`` when held, else the live holder's record."""
    lock = ConfigLock(results_dir, task, config_hash)
    holder = lock.acquire() if enabled else None
    try:
        yield holder
    finally:
        lock.release()
