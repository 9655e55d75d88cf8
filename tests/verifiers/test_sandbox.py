"""The sandbox runs real programs in real subprocesses: what they print, how they end, what
they can see, and that every attack in tests/verifiers/attacks/ is stopped, in both modes
where bwrap works."""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from verifiers.code import CodeVerifier
from verifiers.sandbox import (TRUNCATION_MARK, SandboxLimits, bwrap_works, not_promised,
                               run_python)
from verifiers.sandbox_view import bwrap_mounts, interpreter_view, resolve, shared_objects


def _load_attack_suite():
    path = Path(__file__).parent / "attacks" / "suite.py"
    spec = importlib.util.spec_from_file_location("sandbox_attack_suite", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


attacks = _load_attack_suite()

BWRAP = pytest.param(True, id="bwrap", marks=pytest.mark.skipif(
    not bwrap_works(), reason="bubblewrap missing or user namespaces disabled here "
                              "(apt-get install bubblewrap)"))
MODES = [BWRAP, pytest.param(False, id="rlimits")]
needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap missing here")
FAST = SandboxLimits(wall_seconds=2.0, cpu_seconds=1.0, memory_bytes=256 << 20)


@pytest.mark.parametrize("isolate", MODES)
class TestRunning:
    def test_stdout_stdin_and_argv_round_trip(self, isolate):
        result = run_python("import sys\nprint(input()[::-1], sys.argv[1:])", stdin="abc\n",
                            argv=("x", "y"), isolate=isolate)
        assert result.status == "ok" and result.exit_code == 0
        assert result.stdout == "cba ['x', 'y']\n"
        assert result.isolated is isolate

    def test_nonzero_exit_is_an_error_with_its_traceback(self, isolate):
        result = run_python("raise ValueError('boom')", isolate=isolate)
        assert (result.status, result.exit_code) == ("error", 1)
        assert "ValueError: boom" in result.stderr

    def test_signal_death_is_reported_as_killed(self, isolate):
        result = run_python("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)",
                            isolate=isolate)
        assert (result.status, result.signal, result.exit_code) == ("killed", 15, None)

    def test_environment_is_scrubbed(self, isolate, monkeypatch):
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
        result = run_python("import os\nprint(sorted(os.environ))", isolate=isolate)
        names = set(eval(result.stdout))
        assert "AWS_SECRET_ACCESS_KEY" not in names
        assert names <= {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PWD",
                         "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING"}

    def test_work_dir_is_writable_and_removed_afterwards(self, isolate):
        marker = f"marker-{os.getpid()}-{id(self)}"
        result = run_python(f"open({marker!r}, 'w').write('hi')\nprint(open({marker!r}).read())",
                            isolate=isolate)
        assert result.stdout == "hi\n"
        assert not list(Path(tempfile.gettempdir()).glob(f"sandbox-*/{marker}"))

    def test_interpreter_runs_isolated_mode(self, isolate):
        result = run_python("import sys\nprint(sys.flags.isolated)", isolate=isolate)
        assert result.stdout.strip() == "1"

    def test_exit_builtin_still_works(self, isolate):
        # -S leaves out site, which defines exit(); model code calls it all the time.
        result = run_python("print('bye')\nexit(3)", isolate=isolate)
        assert (result.status, result.exit_code, result.stdout) == ("error", 3, "bye\n")

    def test_starting_a_program_fails_with_a_clear_error(self, isolate):
        for call in ("subprocess.run(['/bin/sh', '-c', 'id'])", "os.system('id')"):
            result = run_python(f"import os, subprocess\n{call}", isolate=isolate)
            assert result.status == "error"
            assert "PermissionError: the sandbox runs no other program" in result.stderr

    def test_only_allowed_packages_import(self, isolate):
        source = "import orjson\nprint(orjson.dumps({'a': 1}).decode())"
        allowed = run_python(source, packages=("orjson",), isolate=isolate)
        assert (allowed.status, allowed.stdout) == ("ok", '{"a":1}\n'), allowed.stderr
        refused = run_python(source, isolate=isolate)
        assert "ModuleNotFoundError: No module named 'orjson'" in refused.stderr

    def test_result_says_what_the_mode_cannot_promise(self, isolate):
        result = run_python("pass", isolate=isolate)
        assert result.not_promised == not_promised(isolate)
        assert bool(result.not_promised) is not isolate

    def test_output_is_capped_and_marked(self, isolate):
        limits = SandboxLimits(output_bytes=1000)
        result = run_python("print('x' * 5000)", limits=limits, isolate=isolate)
        assert (result.status, result.limit) == ("limit", "output")
        assert result.stdout_truncated and not result.stderr_truncated
        assert result.stdout == "x" * 1000 + TRUNCATION_MARK

    def test_large_stdin_and_stdout_do_not_deadlock(self, isolate):
        data = "7" * (3 << 20)
        result = run_python("import sys\nd = sys.stdin.read()\nprint(len(d))\nprint(d[:10])",
                            stdin=data, isolate=isolate)
        assert result.stdout.split() == [str(len(data)), "7" * 10]

    def test_wall_clock_stops_a_sleeping_program(self, isolate):
        result = run_python("import time\ntime.sleep(30)", limits=FAST, isolate=isolate)
        assert result.status == "timeout"
        assert 1.9 < result.wall_seconds < 5.0

    def test_cpu_time_and_memory_are_measured(self, isolate):
        busy = "x = 0\nfor i in range(3_000_000):\n    x += i\nblob = bytearray(64 << 20)\n"
        result = run_python(busy, isolate=isolate)
        assert result.status == "ok"
        assert result.cpu_seconds > 0.05
        assert result.max_rss_bytes and result.max_rss_bytes > 1 << 20

    def test_memory_limit(self, isolate):
        limits = SandboxLimits(memory_bytes=256 << 20, wall_seconds=10)
        result = run_python("blob = bytearray(512 << 20)", limits=limits, isolate=isolate)
        assert (result.status, result.limit) == ("limit", "memory")

    def test_file_size_limit(self, isolate):
        limits = SandboxLimits(file_size_bytes=1 << 16)
        result = run_python("open('big', 'wb').write(b'0' * (1 << 20))", limits=limits,
                            isolate=isolate)
        assert (result.status, result.limit) == ("limit", "file_size")

    def test_channel_carries_bytes_apart_from_stdout(self, isolate):
        source = "import os\nos.write(int(os.environ['SANDBOX_CHANNEL_FD']), b'report')\nprint('out')"
        result = run_python(source, channel=True, isolate=isolate)
        assert (result.channel, result.stdout) == (b"report", "out\n")


@pytest.mark.parametrize("isolate", MODES)
@pytest.mark.parametrize("attack", attacks.attack_names())
def test_attack_is_contained(attack, isolate):
    if not attacks.prevented(attack, isolate):
        pytest.skip(f"{attack} is not prevented without bwrap (see verifiers.sandbox)")
    outcome = attacks.run_attack(attack, isolate)
    assert outcome.contained, f"{attack}: {outcome.why}\nstderr: {outcome.result.stderr[-500:]}"


@pytest.mark.parametrize("attack", ["read_host_files", "spawn_shell", "loopback_socket"])
def test_the_fallback_really_lacks_what_it_does_not_promise(attack):
    # These attacks get through without bwrap, so the bwrap runs that stop them test something.
    assert not attacks.prevented(attack, False)
    outcome = attacks.run_attack(attack, isolate=False)
    assert not outcome.contained, outcome.result.stdout[-500:]


def test_fork_bomb_never_gets_past_the_process_cap():
    # Root ignores RLIMIT_NPROC; the sandbox must run the program as an unprivileged uid.
    source = ("import os, sys\nn = 0\nwhile True:\n    try:\n        pid = os.fork()\n"
              "    except OSError:\n        break\n    if pid == 0:\n        import time\n"
              "        time.sleep(30)\n    n += 1\nprint(n)")
    result = run_python(source, limits=SandboxLimits(processes=10, wall_seconds=5))
    assert result.status == "ok"
    assert int(result.stdout) <= 9  # children; the program itself is the tenth


def test_hard_limits_are_equal_to_soft_ones():
    source = ("import resource\nfor n in ('RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_NPROC'):\n"
              "    s, h = resource.getrlimit(getattr(resource, n))\n    print(s == h != -1)")
    result = run_python(source)
    assert result.stdout.split() == ["True"] * 3


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid drop only happens when we are root")
def test_root_parent_runs_the_program_as_an_unprivileged_uid():
    result = run_python("import os\nprint(os.getuid(), os.getgid(), os.getgroups())")
    uid, gid, groups = result.stdout.split(maxsplit=2)
    assert int(uid) != 0 and int(gid) != 0 and groups.strip() == "[]"


def test_missing_bwrap_falls_back_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert bwrap_works.__wrapped__() is False  # uncached: the cached answer is for this host
    assert "rlimits only, which cannot promise" in caplog.text
    for gap in ("network", "file_view", "programs", "process_view"):
        assert f"{gap}: " in caplog.text


def test_an_unknown_package_is_refused_up_front():
    with pytest.raises(ValueError, match="not_a_package_here"):
        run_python("pass", packages=("not_a_package_here",))
    with pytest.raises(ValueError, match="not_a_package_here"):
        CodeVerifier(packages=("not_a_package_here",))


# ---- what the program can see (bwrap) ---------------------------------------------------

_LIST_FILES = """
import json, os, stat
found = []
for here, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(here, d) != "/proc"]
    for name in files:
        path = os.path.join(here, name)
        if not stat.S_ISLNK(os.lstat(path).st_mode):
            found.append(path)
print(json.dumps(found))
"""


@needs_bwrap
def test_the_view_holds_only_the_interpreter_and_the_work_dir():
    result = run_python(_LIST_FILES, isolate=True, limits=SandboxLimits(wall_seconds=30))
    seen = json.loads(result.stdout)
    view = interpreter_view(sys.executable)
    binaries = {view.executable} | {resolve(p)[1] for p in shared_objects(view)}
    dirs = [d.rstrip("/") + "/" for d in (*view.stdlib, "/tmp/work")]
    devices = {"/dev/null", "/dev/zero", "/dev/urandom"}
    stray = [p for p in seen if p not in binaries | devices and not p.startswith(tuple(dirs))]
    assert not stray, stray[:20]
    assert "/tmp/work/main.py" in seen and view.executable in seen  # the walk did see things
    covered = [p for p in seen if p.startswith(tuple(c + "/" for c in view.covered))]
    assert not covered, covered[:5]


def _hunter(roots: list[str]) -> str:
    """A program that answers with the first answer canary it can read from a file."""
    return f"""
import os, re
def hunt():
    pattern = re.compile(rb"sandbox-canary-[0-9a-f]{{32}}")
    for root in {roots!r}:
        for here, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if os.path.join(here, d) not in ("/proc", "/sys", "/dev")]
            for name in files:
                try:
                    with open(os.path.join(here, name), "rb") as f:
                        found = pattern.search(f.read(1 << 20))
                except OSError:
                    continue
                if found:
                    return found.group().decode()
    return "none"
"""


@pytest.mark.parametrize("isolate", MODES)
def test_tests_never_reach_the_program_as_files(isolate):
    # The whole view with bwrap; without it (the host is too big to walk) the work dir, where
    # a careless verifier would have put them.
    roots = ["/"] if isolate else ["."]
    answer = f"sandbox-canary-{secrets.token_hex(16)}"
    planted = run_python(_hunter(roots) + f"open('answers', 'w').write({answer!r})\nprint(hunt())",
                         isolate=isolate, limits=SandboxLimits(wall_seconds=30, cpu_seconds=20))
    assert planted.stdout.strip() == answer  # the hunter finds a file that is there
    verifier = CodeVerifier(limits=SandboxLimits(wall_seconds=30, cpu_seconds=20),
                            isolate=isolate)
    io = verifier.verify({"tests": [{"input": "", "output": answer}]},
                         _hunter(roots) + "print(hunt())")
    assert not io.correct and "wrong output 'none" in io.reason, io.reason
    asserts = verifier.verify({"tests": [f"assert answer() == {answer!r}"]},
                              _hunter(roots) + "def answer():\n    return hunt()")
    assert not asserts.correct and "operands were 'none'" in asserts.reason, asserts.reason


@needs_bwrap
def test_a_checkout_under_tmp_shows_only_its_allowed_package(tmp_path):
    # The private /tmp must not hide an interpreter or packages that live under the host's
    # /tmp, and binding them back must not bring the rest of that checkout with them.
    checkout = tmp_path / "checkout"
    venv = checkout / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--copies", "--without-pip", str(venv)],
                   check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    package = venv / "lib" / version / "site-packages" / "sp_probe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 42\n")
    (package / "data.txt").write_text("sandbox-canary allowed\n")
    (checkout / "sandbox-canary-answers.jsonl").write_text('{"answer": "gold"}\n')
    python = str(venv / "bin" / "python")
    walk = (Path(__file__).parent / "attacks" / "walk_for_canary.py").read_text()
    result = run_python("import sp_probe\nprint('value', sp_probe.VALUE)\n" + walk,
                        argv=(json.dumps({"hints": [str(checkout)]}),), isolate=True,
                        python=python, packages=("sp_probe",),
                        limits=SandboxLimits(wall_seconds=30, cpu_seconds=20))
    view = interpreter_view(python, ("sp_probe",))
    for used in (interpreter_view(python), view):  # this venv's images (bwrap_works made one)
        shutil.rmtree(Path(bwrap_mounts(used)[0][1]).parent)
    assert result.status == "ok", result.stderr
    assert view.executable.startswith(str(venv))
    found = [line.split()[2] for line in result.stdout.splitlines() if line.startswith("ESCAPED")]
    assert found == [os.path.realpath(package / "data.txt")]
    assert "value 42" in result.stdout


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="wall_seconds"):
        SandboxLimits(wall_seconds=0)
