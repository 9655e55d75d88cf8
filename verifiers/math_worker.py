"""A killable subprocess for the slow half of math checking (sympy simplify / equals).

signal.alarm cannot bound sympy (it fails off the main thread, and C loops ignore it), so
each calling process keeps one persistent child, started lazily with ``python -m
verifiers.math_worker``. Requests and replies are JSON lines on its stdin/stdout (no pickle:
the child handles hostile text, the parent trusts nothing it sends back but two fields).
On a timeout the child is killed and the next request starts a fresh one.

Run as a module, this file is the child's main loop.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

STARTUP_TIMEOUT = 60.0
"""Seconds a fresh child may take to import sympy and say it is ready."""
MEMORY_LIMIT_BYTES = 4 << 30
"""Address-space cap set inside the child: a blow-up fails there with MemoryError."""


class WorkerTimeout(Exception):
    """The child did not answer in time; it has been killed."""


class SympyWorker:
    """One child process per calling process, reused across calls, replaced when killed."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._pid_owner = os.getpid()
        self._lock = threading.Lock()
        self.restarts = 0

    def judge(self, gold: str, pred: str, timeout: float) -> tuple[bool, str]:
        """(correct, reason) from the child, or WorkerTimeout after `timeout` seconds."""
        with self._lock:
            proc = self._ensure_started()
            request = json.dumps({"gold": gold, "pred": pred}) + "\n"
            try:
                proc.stdin.write(request.encode())
                proc.stdin.flush()
                line = _read_line(proc, timeout)
            except (OSError, WorkerTimeout) as e:
                self._kill()
                if isinstance(e, WorkerTimeout):
                    raise
                raise WorkerTimeout(f"worker died: {e}") from None
            if not line:
                self._kill()
                raise WorkerTimeout("worker died")
            reply = json.loads(line)
            return bool(reply["correct"]), str(reply["reason"])

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def close(self) -> None:
        with self._lock:
            self._kill()

    def _ensure_started(self) -> subprocess.Popen:
        if self._pid_owner != os.getpid():  # forked: the child belongs to our parent
            self._proc, self._pid_owner = None, os.getpid()
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "verifiers.math_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, cwd=package_root,
        )
        self.restarts += 1
        try:
            ready = _read_line(self._proc, STARTUP_TIMEOUT)
        except WorkerTimeout:
            self._kill()
            raise
        if not ready:
            self._kill()
            raise WorkerTimeout("worker failed to start")
        return self._proc

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


def _read_line(proc: subprocess.Popen, timeout: float) -> bytes:
    """One reply line within `timeout`, reading the pipe without blocking past the deadline."""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WorkerTimeout(f"timeout after {timeout:g}s")
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return b""
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)


def _serve() -> None:
    """Child main loop: one JSON request per line in, one JSON reply per line out."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ImportError, ValueError, OSError):
        pass
    from verifiers.math import judge_answers

    # Load sympy and its lazily imported simplify machinery before saying ready, so the
    # first real check is not billed for imports.
    judge_answers("\\sin^2 x + \\cos^2 x", "1", use_sympy=True)
    judge_answers("y = 2x + 1", "2x - y + 1 = 0", use_sympy=True)

    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        try:
            correct, reason = judge_answers(request["gold"], request["pred"], use_sympy=True)
        except MemoryError:
            correct, reason = False, "resource limit: out of memory"
        except Exception as e:  # noqa: BLE001  (one bad pair must not kill the worker)
            correct, reason = False, f"rejected: {type(e).__name__} in the sympy worker"
        out.write(json.dumps({"correct": correct, "reason": reason}).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    _serve()
