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

This module launches the program (prelude, rlimits, uid, bwrap command line); the limits, the
result and its classification are in verifiers.sandbox_result, the watch over the running
process tree (pipes, wall clock, reaper) in verifiers.sandbox_process.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from verifiers.sandbox_process import Pipes, Reaper, live_processes
from verifiers.sandbox_result import (GUARANTEES, STATUSES, TRUNCATION_MARK, SandboxLimits,
                                      SandboxResult, not_promised, read_result, whole_seconds)
from verifiers.sandbox_view import InterpreterView, bwrap_mounts, interpreter_view

__all__ = ["GUARANTEES", "STATUSES", "TRUNCATION_MARK", "SandboxLimits", "SandboxResult",
           "bwrap_works", "not_promised", "run_python"]


log = logging.getLogger(__name__)

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
    deadline: float | None = None,
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
    deadline: a time.monotonic() by which the run ends (a timeout) even where
    `limits.wall_seconds` allows more; what starting it costs counts against it.
    """
    python = python or sys.executable
    works = bwrap_works(python)
    if isolate and not works:
        raise RuntimeError("bubblewrap isolation was requested but does not work here")
    use_bwrap = works if isolate is None else isolate
    view = interpreter_view(python, tuple(packages))
    return _run_once(source, stdin, limits, argv, use_bwrap, view, channel, deadline)


def _run_once(source, stdin, limits, argv, use_bwrap, view, channel, deadline=None) -> SandboxResult:
    workdir = Path(tempfile.mkdtemp(prefix="sandbox-"))
    try:
        (workdir / "main.py").write_text(source, encoding="utf-8", errors="surrogatepass")
        uid = _run_uid()
        if uid is not None:
            for path in (workdir, workdir / "main.py"):
                os.chown(path, uid, uid)
        with Pipes(channel) as pipes:
            return _supervise(pipes, stdin, limits, argv, use_bwrap, view, uid, workdir, deadline)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _supervise(pipes, stdin, limits, argv, use_bwrap, view: InterpreterView, uid, workdir,
               deadline):
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
    ends = start + limits.wall_seconds if deadline is None else min(start + limits.wall_seconds, deadline)
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=pipes.stdin_r, stdout=pipes.stdout_w,
        stderr=pipes.stderr_w, pass_fds=pipes.pass_fds, start_new_session=True,
    )
    pipes.close_child_ends()
    reaper = Reaper(proc.pid, uid, namespace=use_bwrap)
    try:
        outcome = pipes.pump(proc.pid, stdin, limits, ends, reaper)
    except BaseException:
        reaper.kill_all()
        raise
    finally:
        proc.returncode = -1  # reaped by wait4 in pump; stops Popen from waiting again
    outcome["sampled_cpu"] = reaper.sampled_cpu_seconds
    return read_result(outcome, limits, use_bwrap, time.monotonic() - start)


def _rlimits(limits: SandboxLimits, uid: int | None) -> list[tuple[str, int]]:
    nproc = limits.processes
    if uid is None:
        # Not root: bwrap's init in the user namespace runs as our uid, and without bwrap
        # RLIMIT_NPROC counts all of our processes, not just this run's.
        nproc += 1 + sum(1 for _, st_uid, _ in live_processes() if st_uid == os.getuid())
    return [
        ("RLIMIT_CPU", whole_seconds(limits.cpu_seconds)),
        ("RLIMIT_AS", limits.memory_bytes),
        ("RLIMIT_FSIZE", limits.file_size_bytes),
        ("RLIMIT_NOFILE", limits.open_files),
        ("RLIMIT_NPROC", nproc),
        ("RLIMIT_CORE", 0),
    ]


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
