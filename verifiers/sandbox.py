"""Run untrusted Python (model-written code) so that it cannot hurt the run or the machine,
and cannot see what judges it.

Two layers, the second only where Linux namespaces work:

* rlimits (CPU, address space, file size, open files, processes; soft = hard so the program
  cannot raise them back), a parent wall clock (a CPU limit misses `sleep`), a new session,
  a scrubbed environment, a private temporary work dir, `python -I -S`, an audit hook that
  refuses to start other programs with a clear error, bounded output reads, and a kill of
  every process the run left behind. When we are root the program runs as a fresh
  unprivileged uid per run: root ignores RLIMIT_NPROC, so without the drop a fork bomb would
  not be stopped, and a per-run uid lets the cleanup find double-forked orphans by uid even
  when they called setsid().
* bubblewrap (`bwrap`): the program sees only the interpreter (see `verifiers.sandbox_view`:
  its binary, standard library and shared libraries, derived from the interpreter itself), the
  packages it is allowed to import, `/dev/{null,zero,urandom}`, `/proc` of its own PID
  namespace, a private writable `/tmp` and its work dir `/tmp/work`; no checkout, home,
  datasets, `/etc` or other programs. No network, its own PID namespace (every process dies
  with it).

Tests never reach the program as files: stdin/stdout expectations and assert tests are judged
in the parent (verifiers.code). What the rlimits fallback cannot promise is in
`not_promised(False)`, in its log line and in every result it returns.
"""

from __future__ import annotations

import functools
import subprocess
import logging
import os
import random
import selectors
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from verifiers.sandbox_view import InterpreterView, bwrap_mounts, interpreter_view


log = logging.getLogger(__name__)

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

# Runs first in the sandboxed interpreter: limits and the uid drop happen before any untrusted
# line. Doing it in the child's own interpreter (not preexec_fn) keeps the parent safe to use
# from threads and costs no second interpreter start.
_PRELUDE = r"""
def _prelude():
    # No json, os or site: together they cost several ms of a ~15 ms interpreter start.
    import _sitebuiltins, builtins, posix, resource, sys
    config = eval(sys.argv[1], {"__builtins__": {}})  # the parent's repr() of plain data
    for name, value in config["rlimits"]:
        resource.setrlimit(getattr(resource, name), (value, value))
    sys.path.extend(config["path"])
    for name in config["preload"]:
        try:
            __import__(name)
        except ImportError:
            pass
    if config["uid"] is not None:
        posix.setgroups([]); posix.setgid(config["uid"]); posix.setuid(config["uid"])
    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")  # what -S leaves out
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    builtins.help = _sitebuiltins._Helper()
    refused = frozenset(("os.exec", "os.posix_spawn", "os.system", "subprocess.Popen"))

    def refuse(event, args):
        if event in refused:
            what = args[0] if args[0] is not None else args[1]
            raise PermissionError("the sandbox runs no other program (%s %.200r)" % (event, what))

    sys.addaudithook(refuse)
    sys.argv = sys.argv[2:]
    main = type(sys)("__main__")
    main.__file__ = sys.argv[0]
    sys.modules["__main__"] = main
    with open(sys.argv[0], "rb") as f:
        return compile(f.read(), sys.argv[0], "exec"), main
_code, _main = _prelude()
del _prelude
exec(_code, _main.__dict__)
"""


def run_python(
    source: str,
    *,
    stdin: str | bytes = b"",
    limits: SandboxLimits = SandboxLimits(),
    argv: tuple[str, ...] = (),
    isolate: bool | None = None,
    python: str | None = None,
    channel: bool = False,
    packages: tuple[str, ...] = (),
) -> SandboxResult:
    """Run `source` as `main.py` in a fresh sandbox and return what happened.

    isolate: None = bubblewrap when it works here, else rlimits only; True = require bwrap
    (RuntimeError if it does not work); False = rlimits only.
    python: the interpreter (default: this one); a venv's runs as its base interpreter.
    channel: give the program an extra write-only pipe whose fd number is in the environment
    variable SANDBOX_CHANNEL_FD; its bytes come back in `SandboxResult.channel`.
    packages: top-level names of installed packages the program may import besides the
    standard library (ValueError when `python` cannot import one); their own dependencies
    must be listed too.
    """
    python = python or sys.executable
    works = bwrap_works(python)
    if isolate and not works:
        raise RuntimeError("bubblewrap isolation was requested but does not work here")
    use_bwrap = works if isolate is None else isolate
    view = interpreter_view(python, tuple(packages))
    return _run_once(source, stdin, limits, argv, use_bwrap, view, channel)


def _run_once(source, stdin, limits, argv, use_bwrap, view, channel) -> SandboxResult:
    workdir = Path(tempfile.mkdtemp(prefix="sandbox-"))
    try:
        (workdir / "main.py").write_text(source, encoding="utf-8", errors="surrogatepass")
        uid = _run_uid()
        if uid is not None:
            for path in (workdir, workdir / "main.py"):
                os.chown(path, uid, uid)
        with _Pipes(channel) as pipes:
            return _supervise(pipes, stdin, limits, argv, use_bwrap, view, uid, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _supervise(pipes, stdin, limits, argv, use_bwrap, view: InterpreterView, uid, workdir):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "HOME": "/tmp", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONIOENCODING": "utf-8"}
    if pipes.channel_w is not None:
        env["SANDBOX_CHANNEL_FD"] = str(pipes.channel_w)
    unreadable = uid is not None and not _interpreter_usable_unprivileged(view.executable)
    preload = [*_PRELOAD, *view.imports] if unreadable and not use_bwrap else []
    config = {"rlimits": _rlimits(limits, uid), "uid": uid, "preload": preload,
              "path": list(view.sys_path)}
    # -S: no site-packages on sys.path (the prelude adds the allowed packages' dirs) and no
    # .pth files run. Without bwrap the rest of those dirs is importable too.
    command = [view.executable, "-I", "-S", "-c", _PRELUDE, repr(config), "main.py", *argv]
    cwd = str(workdir)
    if use_bwrap:
        command, cwd = [*_bwrap_args(workdir, view, limits), *command], "/"
    start = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=pipes.stdin_r, stdout=pipes.stdout_w,
        stderr=pipes.stderr_w, pass_fds=pipes.pass_fds, start_new_session=True,
    )
    pipes.close_child_ends()
    reaper = _Reaper(proc.pid, uid, namespace=use_bwrap)
    try:
        outcome = pipes.pump(proc.pid, stdin, limits, start, reaper)
    except BaseException:
        reaper.kill_all()
        raise
    finally:
        proc.returncode = -1  # reaped by wait4 in pump; stops Popen from waiting again
    outcome["sampled_cpu"] = reaper.sampled_cpu_seconds
    return _result(outcome, limits, use_bwrap, time.monotonic() - start)


def _rlimits(limits: SandboxLimits, uid: int | None) -> list[tuple[str, int]]:
    nproc = limits.processes
    if uid is None:
        # Not root: bwrap's init in the user namespace runs as our uid, and without bwrap
        # RLIMIT_NPROC counts all of our processes, not just this run's.
        nproc += 1 + sum(1 for _, st_uid, _ in _processes() if st_uid == os.getuid())
    return [
        ("RLIMIT_CPU", _whole_seconds(limits.cpu_seconds)),
        ("RLIMIT_AS", limits.memory_bytes),
        ("RLIMIT_FSIZE", limits.file_size_bytes),
        ("RLIMIT_NOFILE", limits.open_files),
        ("RLIMIT_NPROC", nproc),
        ("RLIMIT_CORE", 0),
    ]


def _whole_seconds(seconds: float) -> int:
    return max(1, int(-(-seconds // 1)))


def _fresh_uid() -> int:
    # Far above any real account; random so concurrent runs do not share an NPROC count.
    return 0x60000000 + random.SystemRandom().randrange(1 << 24)


def _run_uid() -> int | None:
    """A fresh unprivileged uid for this run when we are root (see module docstring)."""
    return _fresh_uid() if os.geteuid() == 0 else None


# Without bwrap, an interpreter that only root can read (pyenv under /root) cannot import
# after the uid drop, so the prelude imports what programs commonly need (and the allowed
# packages) while still root; other imports then fail with a clear ImportError instead of
# the run staying root.
_PRELOAD = (
    "array bisect calendar cmath collections collections.abc contextlib copy dataclasses "
    "datetime decimal encodings.ascii encodings.idna encodings.latin_1 enum fractions "
    "functools hashlib heapq io itertools json math numbers operator os pprint queue random "
    "re signal socket statistics string struct subprocess sys textwrap threading time "
    "traceback types typing unicodedata weakref"
).split()


_NAMESPACES = ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
               "--unshare-cgroup-try", "--die-with-parent", "--new-session")


def _bwrap_args(workdir: Path, view: InterpreterView, limits: SandboxLimits) -> list[str]:
    """The view's mounts (built once per interpreter; see verifiers.sandbox_view), a private
    writable /tmp and the work dir."""
    head, tail = bwrap_mounts(view)
    user = ["--unshare-user"] if os.geteuid() != 0 else []
    return ["bwrap", *user, *head, "--perms", "1777", "--size", str(limits.tmp_bytes),
            "--tmpfs", "/tmp", *tail, "--bind", str(workdir), "/tmp/work",
            "--chdir", "/tmp/work", *_NAMESPACES]


class _Pipes:
    """The child's stdin/stdout/stderr (+ channel) pipes and the bounded, non-blocking pump."""

    def __init__(self, channel: bool):
        self.stdin_r, self.stdin_w = os.pipe()
        self.stdout_r, self.stdout_w = os.pipe()
        self.stderr_r, self.stderr_w = os.pipe()
        self.channel_r, self.channel_w = os.pipe() if channel else (None, None)

    def __enter__(self) -> "_Pipes":
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

    def pump(self, pid: int, stdin: str | bytes, limits: SandboxLimits, start: float,
             reaper: "_Reaper") -> dict:
        """Feed stdin, read outputs up to the cap, wait for exit or the wall clock."""
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
        reason, waited, deadline = None, None, start + limits.wall_seconds
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


def _processes(pids=None):
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


class _Reaper:
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
        for pid, st_uid, fields in _processes():
            if (self.uid is not None and st_uid == self.uid) or (
                    int(fields[_STAT_SID]) == self.pid and pid != os.getpid()):
                yield pid, st_uid, fields

    def look(self) -> None:
        """Sample the run's CPU time (bwrap only; throttled)."""
        if not self.sample_cpu or time.monotonic() < self._next_look:
            return
        self._next_look = time.monotonic() + 0.01
        tree = [p for p in _processes(_descendants(self.pid)) if p[1] == self.uid]
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


def _result(outcome: dict, limits: SandboxLimits, isolated: bool, wall: float) -> SandboxResult:
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
        if sig in (signal.SIGXCPU, signal.SIGKILL) and cpu >= _whole_seconds(limits.cpu_seconds) - 0.25:
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


@functools.lru_cache(maxsize=None)
def bwrap_works(python: str | None = None) -> bool:
    """Whether bubblewrap isolation works here: checked once per interpreter by a real run,
    and logged once when it does not, with what the rlimits fallback then cannot promise."""
    python = python or sys.executable
    problem = None
    if shutil.which("bwrap") is None:
        problem = "bwrap not found (apt-get install bubblewrap)"
    else:
        try:
            probe = _run_once("print('ok')", b"", SandboxLimits(wall_seconds=30), (), True,
                              interpreter_view(python), False)
            if not (probe.status == "ok" and probe.stdout.strip() == "ok"):
                problem = f"bwrap does not work here ({probe.stderr[-300:].strip()})"
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            problem = f"bwrap does not work here ({e})"
    if problem:
        gaps = "; ".join(f"{key}: {GUARANTEES[key]}" for key in not_promised(False))
        log.warning("sandbox: %s; untrusted code runs with rlimits only, which cannot promise: "
                    "%s", problem, gaps)
    return problem is None


@functools.lru_cache(maxsize=None)
def _interpreter_usable_unprivileged(python: str) -> bool:
    """Whether a fresh uid can import the stdlib of `python` (not when it lives under /root)."""
    probe = "import os, fractions; os.listdir(os.path.dirname(os.__file__))"
    uid = _fresh_uid()
    try:
        done = subprocess.run([python, "-I", "-S", "-c", probe], user=uid, group=uid, extra_groups=[],
                              capture_output=True, timeout=30, cwd="/")
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0
