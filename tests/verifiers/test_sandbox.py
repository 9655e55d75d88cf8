"""The sandbox runs real programs in real subprocesses: what they print, how they end, and
that every attack in tests/verifiers/attacks/ is stopped, in both modes where bwrap works."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

from verifiers.sandbox import TRUNCATION_MARK, SandboxLimits, bwrap_works, run_python


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
    assert "rlimits only" in caplog.text


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="wall_seconds"):
        SandboxLimits(wall_seconds=0)
