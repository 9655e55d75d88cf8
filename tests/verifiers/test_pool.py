"""VerifierPool with real spawned workers: order, hangs, crashes, parallelism, shutdown.

The test doubles below are verifiers registered only inside pool worker processes (never in the
pytest process, where a suite-wide "verify every task" loop would hang on them). The pool loads
them by importing this module in each worker (`imports=[__name__]`).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from verifiers.base import Verdict, register
from verifiers.pool import VerifierPool


class HangingVerifierDouble:
    """Sleeps forever: the pool must kill it at the item's timeout."""

    name, version = "test_double_hang", "0"

    def verify(self, problem, completion):
        time.sleep(3600)


class DyingVerifierDouble:
    """Exits its process mid-item, like a segfaulting C extension."""

    name, version = "test_double_die", "0"

    def verify(self, problem, completion):
        os._exit(3)


class RaisingVerifierDouble:
    """Breaks the never-raise promise; the worker must survive it."""

    name, version = "test_double_raise", "0"

    def verify(self, problem, completion):
        raise RuntimeError("verifier bug")


class RendezvousVerifierDouble:
    """Correct only if `meta["expect"]` items are in flight at once: each writes its pid into a
    shared folder and waits (up to 20 s) until enough pids are there. Proves parallelism without
    timing anything."""

    name, version = "test_double_rendezvous", "0"

    def verify(self, problem, completion):
        folder = Path(problem["meta"]["folder"])
        (folder / str(os.getpid())).touch()
        for _ in range(400):
            if len(list(folder.iterdir())) >= problem["meta"]["expect"]:
                return Verdict(True, "met the others", verifier=self.name, version=self.version)
            time.sleep(0.05)
        return Verdict(False, "ran alone", verifier=self.name, version=self.version)


if multiprocessing.parent_process() is not None:  # only inside pool workers
    for double in (HangingVerifierDouble(), DyingVerifierDouble(), RaisingVerifierDouble(), RendezvousVerifierDouble()):
        register(double.name, double)

TIMEOUT = 3.0


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(workers=2, timeout=TIMEOUT, imports=[__name__]) as pool:
        yield pool


def addition(a: int, b: int) -> dict:
    return {"task": "addition", "answer": str(a + b), "meta": {"operands": [a, b]}}


def right_trace(a: int, b: int) -> str:
    from verifiers.steps import reference_steps

    return "\n".join(reference_steps("addition", [a, b]))


def test_results_come_back_in_input_order(pool):
    items = [(addition(a, 7), right_trace(a, 7) if a % 3 else "Answer: 0") for a in range(40)]
    verdicts = pool.verify_many(items)
    assert [v.correct for v in verdicts] == [a % 3 != 0 for a in range(40)]
    assert all(v.verifier == "addition" for v in verdicts)


def test_math_is_judged_inside_the_workers(pool):
    # Symbolic equality needs sympy, which the workers run inline (they are killable themselves).
    symbolic, numeric, wrong = pool.verify_many(
        [
            ({"task": "math", "answer": "x^2+2x+1"}, "Answer: (x+1)^2"),
            ({"task": "math", "answer": "1/2"}, "so \\boxed{0.5}"),
            ({"task": "math", "answer": "1/2"}, "so \\boxed{0.6}"),
        ]
    )
    assert (symbolic.correct, numeric.correct, wrong.correct) == (True, True, False), symbolic.reason


def test_hanging_and_dying_workers_cost_only_their_own_item(pool):
    items = [
        (addition(12, 30), right_trace(12, 30)),
        ({"task": "test_double_hang"}, ""),
        (addition(5, 5), right_trace(5, 5)),
        ({"task": "test_double_die"}, ""),
        ({"task": "test_double_raise"}, ""),
        (addition(99, 1), right_trace(99, 1)),
        (addition(99, 1), "Answer: 101"),
    ]
    verdicts = pool.verify_many(items)
    assert [v.correct for v in verdicts] == [True, False, True, False, False, True, False]
    assert verdicts[1].reason == f"timeout after {TIMEOUT:g}s"
    assert verdicts[3].reason.startswith("verifier worker died")
    assert verdicts[4].reason.startswith("verifier error: RuntimeError")
    # The replaced workers keep serving.
    again = pool.verify_many([(addition(a, a), right_trace(a, a)) for a in range(10)])
    assert all(v.correct for v in again)


def test_items_run_in_parallel_on_every_worker(pool, tmp_path):
    meta = {"folder": str(tmp_path), "expect": 2}
    verdicts = pool.verify_many([({"task": "test_double_rendezvous", "meta": meta}, "")] * 2)
    assert [v.reason for v in verdicts] == ["met the others", "met the others"]


def test_workers_killed_while_idle_are_replaced_without_losing_items(pool, tmp_path):
    meta = {"folder": str(tmp_path), "expect": 2}
    pool.verify_many([({"task": "test_double_rendezvous", "meta": meta}, "")] * 2)
    for pid_file in tmp_path.iterdir():  # as the OOM killer would
        os.kill(int(pid_file.name), signal.SIGKILL)
    verdicts = pool.verify_many([(addition(a, 3), right_trace(a, 3)) for a in range(10)])
    assert all(v.correct for v in verdicts), [v.reason for v in verdicts]


def test_submit_streams_futures_as_they_complete(pool):
    futures = {pool.submit(addition(a, 1), right_trace(a, 1)): a for a in range(20)}
    slow = pool.submit({"task": "test_double_hang"}, "", timeout=1.0)
    done = [futures[f] for f in concurrent.futures.as_completed(futures)]
    assert sorted(done) == list(range(20))
    assert slow.result().reason == "timeout after 1s"


def test_unknown_task_and_unpicklable_problem_get_verdicts(pool):
    unknown, unpicklable = pool.verify_many([({"task": "no_such_task"}, "x"), ({"task": "addition", "f": lambda: 0}, "x")])
    assert unknown.reason.startswith("bad problem: no verifier for task 'no_such_task'")
    assert unpicklable.reason.startswith("bad problem: cannot send to worker")


def test_close_finishes_queued_work_and_refuses_more():
    pool = VerifierPool(workers=1, timeout=TIMEOUT)
    futures = [pool.submit(addition(a, 2), right_trace(a, 2)) for a in range(5)]
    pool.close()
    assert all(f.result().correct for f in futures)
    with pytest.raises(RuntimeError):
        pool.submit(addition(1, 1), right_trace(1, 1))


def test_close_with_cancel_does_not_wait_for_running_items():
    pool = VerifierPool(workers=1, timeout=3600, imports=[__name__])
    running = pool.submit({"task": "test_double_hang"}, "")
    queued = [pool.submit(addition(1, 1), right_trace(1, 1)) for _ in range(3)]
    for _ in range(1200):  # until a worker has started and taken the item (bounded: 60 s)
        if running.running():
            break
        time.sleep(0.05)
    pool.close(cancel_pending=True)  # would take an hour if it waited for the hanging item
    assert running.result(timeout=0).reason == "verifier pool closed before this item was judged"
    assert all(f.cancelled() for f in queued)


def test_workers_that_cannot_start_break_the_pool_with_a_reason():
    with VerifierPool(workers=1, timeout=TIMEOUT, imports=["no_such_module_for_the_pool_test"]) as pool:
        verdict = pool.submit(addition(1, 1), right_trace(1, 1)).result(timeout=120)
        assert verdict.reason.startswith("verifier pool broken: workers fail at start")
        # Later items are answered at once instead of waiting on a pool that cannot work.
        assert pool.submit(addition(1, 1), "").result(timeout=5).reason == verdict.reason
