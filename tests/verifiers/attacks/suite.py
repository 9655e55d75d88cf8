"""Runs the attack programs in this directory through the sandbox and says whether each one
was contained. Shared by tests/verifiers/test_sandbox.py and bench/sandbox.py.

Every attack gets one argument, a JSON object with a unique token (it is in the program's
command line, so any process it leaves behind can be found), the paths outside its work dir
it may try to write, a loopback port with a listener behind it, the names of secrets, and
host files it must not read. For the attacks that hunt for answers the runner plants canary
files (a fresh secret each) in the checkout, its current directory, $HOME and a dataset
directory, and a Hugging Face token where there is none. An attack that succeeds prints
"ESCAPED ..."; the runner also checks the host side itself (files, listener, survivors, any
secret in the output), never trusting only the program's word.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from verifiers.sandbox import SandboxLimits, SandboxResult, not_promised, run_python

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
    "walk_for_canary": {"ok"},
    "read_host_files": {"ok"},
    "spawn_shell": {"ok"},
}
# The walk reads every visible file; it gets time to finish, so "none found" means something.
OWN_LIMITS = {"walk_for_canary": replace(LIMITS, wall_seconds=30.0, cpu_seconds=20.0)}
# The sandbox guarantee (verifiers.sandbox.GUARANTEES) each attack tests, where not always kept.
GUARANTEE = {
    "loopback_socket": "network",
    "walk_for_canary": "file_view",
    "read_host_files": "file_view",
    "spawn_shell": "programs",
    "write_outside": "caller_uid",
    "read_secrets": "caller_uid",
    "kill_parent": "caller_uid",
}
HUNTERS = {"walk_for_canary", "read_host_files"}  # these get canaries planted
SECRET_ENV = "SANDBOX_TEST_SECRET"
HF_TOKEN = Path.home() / ".cache" / "huggingface" / "token"


def attack_names() -> list[str]:
    return sorted(EXPECTED)


def prevented(name: str, isolated: bool) -> bool:
    """Whether this sandbox mode promises to stop the attack (see verifiers.sandbox)."""
    return GUARANTEE.get(name) not in not_promised(isolated)


@dataclass
class Containment:
    attack: str
    isolated: bool
    contained: bool
    why: str
    result: SandboxResult


def run_attack(name: str, isolate: bool) -> Containment:
    token = secrets.token_hex(8)
    limits = OWN_LIMITS.get(name, LIMITS)
    with ExitStack() as stack:
        listener = stack.enter_context(_listener())
        private_file = stack.enter_context(_private_file())
        stack.enter_context(_secret_env(token))
        planted = stack.enter_context(_canaries(token)) if name in HUNTERS else {}
        outside = [f"/etc/sandbox-escape-{token}", f"/root/sandbox-escape-{token}",
                   str(REPO / f"sandbox-escape-{token}")]
        target = {"token": token, "outside": outside, "port": listener.getsockname()[1],
                  "secret_env": SECRET_ENV, "private_file": private_file,
                  "host_files": ["/etc/passwd", str(HF_TOKEN), str(REPO / "README.md")],
                  "hints": sorted({str(Path(p).parent) for p in planted})}
        source = (ATTACKS_DIR / f"{name}.py").read_text()
        result = run_python(source, argv=(json.dumps(target),), limits=limits, isolate=isolate)
        why = _breaches(name, result, limits, outside, listener, planted, token)
    return Containment(name, result.isolated, not why, "; ".join(why), result)


@contextmanager
def _canaries(token: str):
    """Plant answer files where a program hunting for tests would look; yield {path: secret}
    for every file whose content must never show up in the program's output."""
    dataset = Path(tempfile.mkdtemp(prefix="sandbox-dataset-", dir="/var/tmp"))
    dataset.chmod(0o755)  # world-readable, as a shared dataset dir is
    places = {REPO, Path.cwd().resolve(), Path.home(), dataset}
    planted = {str(d / f"sandbox-canary-{token}.jsonl"): f"gold-{secrets.token_hex(16)}"
               for d in places}
    made_token = not HF_TOKEN.exists()
    try:
        for path, secret in planted.items():
            Path(path).write_text(f'{{"sandbox-canary": "{secret}"}}\n')
        if made_token:
            HF_TOKEN.parent.mkdir(parents=True, exist_ok=True)
            HF_TOKEN.write_text(f"hf_{secrets.token_hex(16)}")
        secrets_shown = {**planted, str(HF_TOKEN): HF_TOKEN.read_text().strip()}
        for path in ("/etc/passwd", REPO / "README.md"):
            secrets_shown[str(path)] = Path(path).read_text()[:60]
        yield secrets_shown
    finally:
        for path in planted:
            Path(path).unlink(missing_ok=True)
        dataset.rmdir()
        if made_token:
            HF_TOKEN.unlink(missing_ok=True)


def _breaches(name, result, limits, outside, listener, planted, token) -> list[str]:
    why = []
    if result.status not in EXPECTED[name]:
        why.append(f"status {result.status} ({result.limit}), expected {sorted(EXPECTED[name])}")
    if "ESCAPED" in result.stdout:
        why.append(result.stdout[result.stdout.index("ESCAPED"):][:200])
    for path, secret in planted.items():
        if secret and (secret in result.stdout or secret in result.stderr):
            why.append(f"the output holds the content of {path}")
    for path in outside:
        if os.path.exists(path):
            os.unlink(path)
            why.append(f"wrote {path}")
    survivors = surviving_processes(token)
    if survivors:
        why.append(f"processes survived: {survivors}")
    if result.wall_seconds > limits.wall_seconds + 2.0:
        why.append(f"took {result.wall_seconds:.1f}s")
    if len(result.stdout) > limits.output_bytes + 100:
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

