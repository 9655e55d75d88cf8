"""Runs the attack programs in this directory through the sandbox and says whether each one
was contained. Shared by tests/verifiers/test_sandbox.py and bench/sandbox.py.

Every attack gets one argument, a JSON object with a unique token (it is in the program's
command line, so any process it leaves behind can be found), the paths outside its work dir
it may try to write, a loopback port with a listener behind it, and the names of secrets.
An attack that succeeds prints "ESCAPED ..."; the runner also checks the host side itself
(files, listener, survivors), never trusting only the program's word.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from verifiers.sandbox import SandboxLimits, SandboxResult, run_python

ATTACKS_DIR = Path(__file__).resolve().parent
REPO = ATTACKS_DIR.parents[2]
LIMITS = SandboxLimits(wall_seconds=2.0, cpu_seconds=1.0, memory_bytes=256 << 20,
                       file_size_bytes=1 << 20, processes=16, output_bytes=64 << 10)
STOPPED = {"timeout", "limit", "error", "killed"}
# Which statuses count as "stopped as it should be"; "ok"/"error" where the program ends on
# its own after its attempts failed.
EXPECTED = {
    "fork_bomb": STOPPED,
    "thread_bomb": STOPPED,
    "memory_bomb": {"limit", "timeout"},  # timeout: a loaded machine, still contained
    "infinite_loop": {"limit", "timeout"},
    "sleep_forever": {"timeout"},
    "output_flood": {"limit"},
    "write_outside": {"ok"},
    "read_secrets": {"ok"},
    "loopback_socket": {"ok"},
    "kill_parent": {"ok"},
    "raise_limits": {"ok"},
    "orphan": {"ok"},
}
SECRET_ENV = "SANDBOX_TEST_SECRET"


def attack_names() -> list[str]:
    return sorted(EXPECTED)


def prevented(name: str, isolated: bool) -> bool:
    """Whether this sandbox mode promises to stop the attack (see verifiers.sandbox)."""
    if name == "loopback_socket":
        return isolated  # no network namespace without bwrap
    if name in ("write_outside", "read_secrets"):
        return isolated or os.geteuid() == 0  # a normal user's fallback runs as that user
    return True


@dataclass
class Containment:
    attack: str
    isolated: bool
    contained: bool
    why: str
    result: SandboxResult


def run_attack(name: str, isolate: bool) -> Containment:
    token = secrets.token_hex(8)
    with ExitStack() as stack:
        listener = stack.enter_context(_listener())
        private_file = stack.enter_context(_private_file())
        stack.enter_context(_secret_env(token))
        outside = [f"/etc/sandbox-escape-{token}", f"/root/sandbox-escape-{token}",
                   str(REPO / f"sandbox-escape-{token}")]
        target = {"token": token, "outside": outside, "port": listener.getsockname()[1],
                  "secret_env": SECRET_ENV, "private_file": private_file}
        source = (ATTACKS_DIR / f"{name}.py").read_text()
        result = run_python(source, argv=(json.dumps(target),), limits=LIMITS, isolate=isolate)
        why = _breaches(name, result, token, outside, listener)
    return Containment(name, result.isolated, not why, "; ".join(why), result)


def _breaches(name, result, token, outside, listener) -> list[str]:
    why = []
    if result.status not in EXPECTED[name]:
        why.append(f"status {result.status} ({result.limit}), expected {sorted(EXPECTED[name])}")
    if "ESCAPED" in result.stdout:
        why.append(result.stdout[result.stdout.index("ESCAPED"):][:200])
    for path in outside:
        if os.path.exists(path):
            os.unlink(path)
            why.append(f"wrote {path}")
    survivors = surviving_processes(token)
    if survivors:
        why.append(f"processes survived: {survivors}")
    if result.wall_seconds > LIMITS.wall_seconds + 2.0:
        why.append(f"took {result.wall_seconds:.1f}s")
    if len(result.stdout) > LIMITS.output_bytes + 100:
        why.append(f"kept {len(result.stdout)} bytes of output")
    try:
        listener.accept()[0].close()
        why.append("connected to the host's loopback")
    except BlockingIOError:
        pass
    return why


def surviving_processes(token: str) -> list[int]:
    """PIDs whose command line holds `token` (our own test process excluded)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
                state = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if token.encode() in cmdline and state != b"Z":
                found.append(int(entry.name))
    return found


@contextmanager
def _listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


@contextmanager
def _private_file():
    with tempfile.TemporaryDirectory() as tmp:  # 0700, owned by us
        path = Path(tmp) / "private.txt"
        path.write_text("ESCAPED private data")
        path.chmod(0o600)
        yield str(path)


@contextmanager
def _secret_env(token: str):
    old = os.environ.get(SECRET_ENV)
    os.environ[SECRET_ENV] = f"secret-{token}"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(SECRET_ENV, None)
        else:
            os.environ[SECRET_ENV] = old

