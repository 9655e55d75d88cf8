"""What a sandboxed run may use and what comes back of it: the guarantees the sandbox makes,
the limits of one run, its result, and how a finished process is read into that result
(which limit stopped it, if any). The launch is in verifiers.sandbox, the watch over the
running process tree in verifiers.sandbox_process."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

STATUSES = ("ok", "error", "timeout", "killed", "limit")

GUARANTEES = {
    "network": "no network: no socket reaches another host or the host's loopback",
    "file_view": "the file system holds only the interpreter, the allowed packages and the "
                 "work dir: no checkout, datasets, tests, home or /etc",
    "programs": "no program but the interpreter can start (no shell)",
    "process_view": "the host's other processes are out of sight",
    "caller_uid": "the program never runs as the caller: it cannot read the caller's private "
                  "files, write where only the caller may, or signal the caller's processes",
}
"""What the sandbox promises with bubblewrap; `not_promised` says which the fallback lacks."""


def not_promised(isolated: bool) -> tuple[str, ...]:
    """The GUARANTEES a run without (False) or with (True) bubblewrap cannot keep. Without it,
    an audit hook still refuses subprocess/os.system/exec, but ctypes gets around it."""
    if isolated:
        return ()
    gaps = ("network", "file_view", "programs", "process_view")
    return gaps if os.geteuid() == 0 else (*gaps, "caller_uid")  # root drops to a fresh uid


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one run; every one holds for the whole process tree."""

    wall_seconds: float = 10.0
    """Parent wall clock; catches sleep and blocking reads that a CPU limit misses."""
    cpu_seconds: float = 10.0
    """RLIMIT_CPU per process (rounded up to whole seconds)."""
    memory_bytes: int = 1 << 30
    """RLIMIT_AS: address space per process."""
    file_size_bytes: int = 16 << 20
    """RLIMIT_FSIZE: largest file the program may write."""
    open_files: int = 64
    """RLIMIT_NOFILE."""
    processes: int = 32
    """Processes + threads the run may have at once, the program itself included
    (RLIMIT_NPROC on the run's own uid)."""
    output_bytes: int = 1 << 20
    """Bytes kept per stream (stdout, stderr, channel); more is a `limit` stop."""
    tmp_bytes: int = 64 << 20
    """Size of the private /tmp (bwrap only)."""

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "cpu_seconds", "memory_bytes", "file_size_bytes",
                     "open_files", "processes", "output_bytes", "tmp_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SandboxLimits.{name} must be positive")


@dataclass(frozen=True)
class SandboxResult:
    status: str
    """ok | error (nonzero exit) | timeout | killed (by a signal) | limit (see `limit`)."""
    exit_code: int | None
    """Exit code when the program exited, None when a signal ended it."""
    signal: int | None
    """The signal that ended the program, if any."""
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    wall_seconds: float
    cpu_seconds: float
    """User + system CPU of the whole process tree that was waited for."""
    max_rss_bytes: int | None
    isolated: bool
    """True when bubblewrap namespaces were used, False for rlimits only."""
    limit: str | None = None
    """Which limit stopped it: memory, cpu, file_size, processes or output."""
    channel: bytes = b""
    """What the program wrote to the extra channel fd (see `run_python(channel=True)`)."""
    not_promised: tuple[str, ...] = ()
    """Keys of GUARANTEES this run could not keep (the rlimits fallback; empty with bwrap)."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


TRUNCATION_MARK = "\n[... output truncated by the sandbox ...]\n"


def whole_seconds(seconds: float) -> int:
    """A CPU limit as RLIMIT_CPU takes it: whole seconds, rounded up."""
    return max(1, int(-(-seconds // 1)))


def read_result(outcome: dict, limits: SandboxLimits, isolated: bool, wall: float) -> SandboxResult:
    status_word, rusage = outcome["waited"]
    exit_code, sig = _decode_status(status_word, isolated)
    out, truncated = outcome["out"], outcome["truncated"]
    stdout = out["stdout"].decode("utf-8", "replace")
    stderr = out["stderr"].decode("utf-8", "replace")
    stdout += TRUNCATION_MARK if truncated["stdout"] else ""
    stderr += TRUNCATION_MARK if truncated["stderr"] else ""
    cpu = rusage.ru_utime + rusage.ru_stime
    if outcome.get("sampled_cpu") is not None:
        cpu = max(cpu, outcome["sampled_cpu"])
    status, limit = _classify(outcome["reason"], exit_code, sig, stderr, cpu, limits)
    return SandboxResult(
        status=status, exit_code=exit_code, signal=sig, stdout=stdout, stderr=stderr,
        stdout_truncated=truncated["stdout"], stderr_truncated=truncated["stderr"],
        wall_seconds=wall, cpu_seconds=cpu, max_rss_bytes=rusage.ru_maxrss * 1024,
        isolated=isolated, limit=limit, channel=bytes(out.get("channel", b"")),
        not_promised=not_promised(isolated),
    )


def _decode_status(status_word: int, isolated: bool) -> tuple[int | None, int | None]:
    if os.WIFSIGNALED(status_word):
        return None, os.WTERMSIG(status_word)
    code = os.WEXITSTATUS(status_word)
    if isolated and code > 128 and code - 128 < signal.NSIG:
        return None, code - 128  # bwrap's init reports a signalled child as 128 + signal
    return code, None


_LIMIT_ERRORS = (
    ("MemoryError", "memory"),
    ("File too large", "file_size"),
    ("can't start new thread", "processes"),
    ("[Errno 11] Resource temporarily unavailable", "processes"),
)


def _classify(reason, exit_code, sig, stderr, cpu, limits) -> tuple[str, str | None]:
    if reason == "timeout":
        return "timeout", None
    if reason == "output":
        return "limit", reason
    if sig is not None:
        if sig in (signal.SIGXCPU, signal.SIGKILL) and cpu >= whole_seconds(limits.cpu_seconds) - 0.25:
            return "limit", "cpu"
        if sig == signal.SIGXFSZ:
            return "limit", "file_size"
        return "killed", None
    if exit_code == 0:
        return "ok", None
    tail = stderr[-2000:]
    for marker, limit in _LIMIT_ERRORS:
        if marker in tail:
            return "limit", limit
    return "error", None
