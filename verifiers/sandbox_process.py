"""Watching a sandboxed program while it runs: its pipes (stdin fed, outputs read up to a cap,
a wall clock) and every process it started (found and killed when the run ends, and, under
bwrap, its CPU time sampled). verifiers.sandbox launches the program and hands it to these."""

from __future__ import annotations

import logging
import os
import selectors
import signal
import time

from verifiers.sandbox_result import SandboxLimits

log = logging.getLogger("verifiers.sandbox")  # one logger for the whole sandbox


class Pipes:
    """The child's stdin/stdout/stderr (+ channel) pipes and the bounded, non-blocking pump."""

    def __init__(self, channel: bool):
        self.stdin_r, self.stdin_w = os.pipe()
        self.stdout_r, self.stdout_w = os.pipe()
        self.stderr_r, self.stderr_w = os.pipe()
        self.channel_r, self.channel_w = os.pipe() if channel else (None, None)

    def __enter__(self) -> "Pipes":
        return self

    def __exit__(self, *exc) -> None:
        for name in ("stdin_r", "stdin_w", "stdout_r", "stdout_w", "stderr_r", "stderr_w",
                     "channel_r", "channel_w"):
            self._close(name)

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return () if self.channel_w is None else (self.channel_w,)

    def _close(self, name: str) -> None:
        fd = getattr(self, name)
        if fd is not None:
            os.close(fd)
            setattr(self, name, None)

    def close_child_ends(self) -> None:
        for name in ("stdin_r", "stdout_w", "stderr_w", "channel_w"):
            self._close(name)

    def pump(self, pid: int, stdin: str | bytes, limits: SandboxLimits, deadline: float,
             reaper: "Reaper") -> dict:
        """Feed stdin, read outputs up to the cap, wait for exit or the wall clock (`deadline`,
        a time.monotonic())."""
        pending = stdin.encode("utf-8", "surrogateescape") if isinstance(stdin, str) else bytes(stdin)
        streams = {self.stdout_r: "stdout", self.stderr_r: "stderr"}
        if self.channel_r is not None:
            streams[self.channel_r] = "channel"
        out = {name: bytearray() for name in streams.values()}
        truncated = {name: False for name in streams.values()}
        sel = selectors.DefaultSelector()
        for fd in streams:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        if pending:
            os.set_blocking(self.stdin_w, False)
            sel.register(self.stdin_w, selectors.EVENT_WRITE)
        else:
            self._close("stdin_w")
        reason, waited = None, None
        while reason is None:
            waited = _try_wait(pid)
            if waited is not None:
                break
            if time.monotonic() >= deadline:
                reason = "timeout"
            reaper.look()
            if not sel.get_map():  # every stream closed: the exit is due any moment
                time.sleep(0.002)
                continue
            for key, _ in sel.select(timeout=min(0.01, max(0.0, deadline - time.monotonic()))):
                if key.fd == self.stdin_w:
                    pending = self._feed(sel, pending)
                elif self._read(key.fd, sel, out[streams[key.fd]], limits.output_bytes):
                    truncated[streams[key.fd]] = True
                    reason = reason or "output"
        reaper.kill_all(exited=waited is not None)  # also orphans holding the pipes open
        if waited is None:
            waited = os.wait4(pid, 0)[1:]
        self._drain(sel, streams, out, truncated, limits.output_bytes)
        return {"out": out, "truncated": truncated, "reason": reason, "waited": waited}

    def _drain(self, sel, streams, out, truncated, cap) -> None:
        until = time.monotonic() + 0.5
        while sel.get_map() and time.monotonic() < until:
            for key, _ in sel.select(timeout=0.05):
                if key.fd not in streams:
                    sel.unregister(key.fd)
                elif self._read(key.fd, sel, out[streams[key.fd]], cap):
                    truncated[streams[key.fd]] = True
                    sel.unregister(key.fd)
        sel.close()

    def _feed(self, sel, data: bytes) -> bytes:
        try:
            sent = os.write(self.stdin_w, data[:65536])
        except (BlockingIOError, InterruptedError):
            return data
        except OSError:  # the program closed its stdin: the rest is not wanted
            sent = len(data)
        data = data[sent:]
        if not data:
            sel.unregister(self.stdin_w)
            self._close("stdin_w")
        return data

    @staticmethod
    def _read(fd: int, sel, buf: bytearray, cap: int) -> bool:
        """Read what is there; True when the stream went past the cap."""
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return False
        if not chunk:
            sel.unregister(fd)
            return False
        room = cap - len(buf)
        buf += chunk[: max(room, 0)]
        return len(chunk) > room


def _try_wait(pid: int):
    found, status, rusage = os.wait4(pid, os.WNOHANG)
    return (status, rusage) if found else None


def live_processes(pids=None):
    """(pid, uid, /proc/<pid>/stat fields after the name) of live processes (all, or `pids`)."""
    if pids is None:
        pids = (int(e.name) for e in os.scandir("/proc") if e.name.isdigit())
    for pid in pids:
        try:
            st_uid = os.stat(f"/proc/{pid}").st_uid
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it exited while we looked
        if fields[0] != b"Z":
            yield pid, st_uid, fields


def _descendants(root: int) -> list[int]:
    """`root` and its descendants via /proc/<pid>/task/<tid>/children (cheap: no full scan)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            for task in os.scandir(f"/proc/{pid}/task"):
                with open(f"{task.path}/children", "rb") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


_STAT_PPID, _STAT_SID, _STAT_CPU = 1, 3, slice(11, 15)  # utime stime cutime cstime
_TICK = os.sysconf("SC_CLK_TCK")


class Reaper:
    """Finds and kills everything a run started: by its private uid when it has one (that
    catches double-forked orphans that left the session too), else by process group and
    session id. With bwrap the PID namespace dies with its init, and the kernel lets that init
    exit only once every process in the namespace is gone: after bwrap exited on its own there
    is nothing left to look for (that full /proc scan costs milliseconds on a busy host).
    Under bwrap the waited process is bwrap, whose rusage lacks the program, so CPU is
    sampled from /proc."""

    def __init__(self, pid: int, uid: int | None, namespace: bool):
        self.pid, self.uid, self.namespace = pid, uid, namespace
        self.sample_cpu = namespace and uid is not None
        self._next_look = 0.0
        self._cpu_ticks: dict[int, int] = {}

    def _mine(self):
        for pid, st_uid, fields in live_processes():
            if (self.uid is not None and st_uid == self.uid) or (
                    int(fields[_STAT_SID]) == self.pid and pid != os.getpid()):
                yield pid, st_uid, fields

    def look(self) -> None:
        """Sample the run's CPU time (bwrap only; throttled)."""
        if not self.sample_cpu or time.monotonic() < self._next_look:
            return
        self._next_look = time.monotonic() + 0.01
        tree = [p for p in live_processes(_descendants(self.pid)) if p[1] == self.uid]
        uids = {pid: st_uid for pid, st_uid, _ in tree}
        for pid, _, fields in tree:
            if uids.get(int(fields[_STAT_PPID])) != self.uid:  # a top process: it counts its reaped children
                ticks = sum(int(x) for x in fields[_STAT_CPU])
                self._cpu_ticks[pid] = max(ticks, self._cpu_ticks.get(pid, 0))

    @property
    def sampled_cpu_seconds(self) -> float | None:
        return sum(self._cpu_ticks.values()) / _TICK if self.sample_cpu else None

    def kill_all(self, exited: bool = False) -> None:
        """Kill what is left; `exited`: the waited process has already exited."""
        if self.namespace and exited:
            return
        for _ in range(100):
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            left = [pid for pid, _, _ in self._mine()]
            if not left:
                return
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.001)
        log.error("sandbox: processes of run %d survived 100 kill sweeps", self.pid)
