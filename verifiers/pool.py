"""Check many completions in parallel worker processes, each item under a hard timeout.

Verifiers promise never to hang, but a promise is not a guarantee: sympy can spin on a
pathological expression and a C extension can crash the process. So the pool runs every item in
a separate, killable process. A worker that overruns its item's deadline is killed and replaced,
a worker that dies is replaced, and in both cases that one item gets a rejecting Verdict with the
reason; every other item is judged normally and the pool keeps going.

    with VerifierPool(workers=4, timeout=20) as pool:
        verdicts = pool.verify_many([(problem, completion), ...])   # input order

    futures = [pool.submit(p, c) for p, c in stream]                # streaming form
    for done in concurrent.futures.as_completed(futures): ...

`submit` returns a `concurrent.futures.Future`, so callers can also `asyncio.wrap_future` it
inside an async Ray actor. One dispatcher thread owns the workers: it hands the next queued
item to each idle worker as soon as it is ready, so every worker stays busy while work is queued.

Workers are started with "spawn" (safe inside Ray actors and pytest, no inherited threads or
locks) and call `verifiers.math.set_inline(True)`: the worker itself is the killable process, so
the math verifier need not start another one per item. As with any spawned process, a script
that makes a pool needs the `if __name__ == "__main__":` guard (the worker re-imports the main
module); without it every worker dies at start and the pool reports itself broken.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Iterable, Mapping, Sequence

from verifiers.base import Verdict, deadline, verify

POOL_VERSION = "1"
STARTUP_TIMEOUT_S = 120.0
"""A worker that has not finished importing the verifiers by then is killed (a hung import)."""
MAX_START_FAILURES = 3
"""Consecutive workers dying before they are ready: the environment is broken, stop respawning."""


@dataclass
class _Item:
    future: Future
    problem: Mapping[str, Any]
    completion: str
    timeout: float
    deaths: int = 0
    """Workers that died while holding this item; one death may be bad luck, two is the item."""


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    item: _Item | None = None
    deadline: float = 0.0


class VerifierPool:
    """A fixed number of verifier worker processes with per-item timeouts.

    workers:  processes to run (default: every core this process may use).
    timeout:  seconds one item may take before its worker is killed (per-item override in submit).
              This number rules over any limit of a verifier's own: the worker passes it on
              (verifiers.base.deadline), and the code verifier ends its runs in time to say which
              case ran out of it instead of being killed with them.
    imports:  extra modules each worker imports at start, so verifiers registered there (your own
              task kinds) exist in the workers too.
    start_method: "spawn" (default) or "forkserver".
    """

    def __init__(
        self,
        workers: int | None = None,
        timeout: float = 30.0,
        imports: Sequence[str] = (),
        start_method: str = "spawn",
    ):
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.workers = max(1, workers or usable_cores())
        self.timeout = float(timeout)
        self._imports = tuple(imports)
        self._context = multiprocessing.get_context(start_method)
        self._lock = threading.Lock()
        self._queue: deque[_Item] = deque()
        self._closing = False
        self._abandon = False
        self._broken: str | None = None
        self._start_failures = 0
        self._wake_r, self._wake_w = os.pipe()
        self._pool: list[_Worker] = [self._start_worker() for _ in range(self.workers)]
        self._thread = threading.Thread(target=self._run, name="verifier-pool", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- public API

    def submit(self, problem: Mapping[str, Any], completion: str, timeout: float | None = None) -> Future:
        """Queue one item; the Future resolves to its Verdict (never to an exception)."""
        item = _Item(Future(), problem, completion, float(timeout or self.timeout))
        with self._lock:
            if self._closing:
                raise RuntimeError("VerifierPool is closed")
            broken = self._broken
            if broken is None:
                self._queue.append(item)
        if broken is not None:
            _resolve(item, Verdict(False, broken, verifier="pool", version=POOL_VERSION))
        else:
            self._wake()
        return item.future

    def verify_many(self, items: Iterable[tuple[Mapping[str, Any], str]]) -> list[Verdict]:
        """Judge every (problem, completion); verdicts come back in input order."""
        futures = [self.submit(problem, completion) for problem, completion in items]
        return [f.result() for f in futures]

    @property
    def pending(self) -> int:
        """Items queued or running."""
        with self._lock:
            return len(self._queue) + sum(w.item is not None for w in self._pool)

    def close(self, cancel_pending: bool = False) -> None:
        """Stop the workers. Queued and running items are finished first, unless `cancel_pending`:
        then queued futures are cancelled and running items get a "pool closed" Verdict at once,
        so shutting down never waits out a slow item's timeout."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._abandon = cancel_pending
            if cancel_pending:
                while self._queue:
                    self._queue.popleft().future.cancel()
        self._wake()
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel_pending=exc_type is not None)

    # ----------------------------------------------------------- dispatcher thread

    def _run(self) -> None:
        try:
            while True:
                self._dispatch()
                if self._abandon:
                    self._fail_everything("verifier pool closed before this item was judged")
                with self._lock:
                    done = self._closing and not self._queue and all(w.item is None for w in self._pool)
                if done:
                    break
                self._wait_for_events()
                self._expire_overdue()
        except BaseException as e:  # never leave a caller waiting on a Future forever
            self._fail_everything(f"verifier pool error: {type(e).__name__}: {e}")
        finally:
            for worker in self._pool:
                self._stop_worker(worker, kill=self._abandon)

    def _dispatch(self) -> None:
        """Give queued items to idle, ready workers."""
        for worker in self._pool:
            if not worker.ready or worker.item is not None:
                continue
            item = self._next_item()
            if item is None:
                return
            try:
                worker.conn.send((item.problem, item.completion, item.timeout))
            except (BrokenPipeError, EOFError, OSError):
                # The worker died while idle: not this item's fault, so it goes back in front.
                with self._lock:
                    self._queue.appendleft(item)
                self._replace(worker, None, "")
                continue
            except Exception as e:  # the problem itself could not be pickled
                _resolve(item, self._verdict(f"bad problem: cannot send to worker: {type(e).__name__}: {e}"))
                continue
            if not item.future.running():
                # False when cancelled meanwhile: the worker still runs it, _resolve drops the result.
                item.future.set_running_or_notify_cancel()
            worker.item = item
            worker.deadline = time.monotonic() + item.timeout

    def _next_item(self) -> _Item | None:
        with self._lock:
            while self._queue:
                item = self._queue.popleft()
                if not item.future.cancelled():
                    return item
        return None

    def _wait_for_events(self) -> None:
        now = time.monotonic()
        deadlines = [w.deadline for w in self._pool if w.item is not None]
        deadlines += [w.started + STARTUP_TIMEOUT_S for w in self._pool if not w.ready]
        timeout = max(0.0, min(deadlines) - now) if deadlines else None
        sources: list[Any] = [self._wake_r]
        for worker in self._pool:
            sources += [worker.conn, worker.process.sentinel]
        ready = set(wait(sources, timeout))
        if self._wake_r in ready:
            os.read(self._wake_r, 4096)
        for worker in list(self._pool):
            if worker.conn in ready or worker.process.sentinel in ready:
                self._receive(worker)

    def _receive(self, worker: _Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            self._handle_death(worker)
            return
        except Exception as e:  # an unpicklable result: the worker is fine, the item is not
            if worker.item is not None:
                _resolve(worker.item, self._verdict(f"verifier error: unreadable result: {e}"))
                worker.item = None
            return
        if message == "ready":
            worker.ready = True
            self._start_failures = 0
        elif worker.item is not None:
            _resolve(worker.item, message)
            worker.item = None

    def _handle_death(self, worker: _Worker) -> None:
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        item = worker.item
        if item is not None and item.deaths == 0:
            # A worker killed from outside (OOM killer) just as it got an item would otherwise cost
            # that item its verdict; retry it once. An item that kills a second worker is reported.
            item.deaths += 1
            with self._lock:
                self._queue.appendleft(item)
            self._replace(worker, None, "")
        elif worker.ready:
            self._replace(worker, item, f"verifier worker died: exit code {code} (twice on this item)")
        else:
            self._start_failed(worker, f"exit code {code}")

    def _expire_overdue(self) -> None:
        now = time.monotonic()
        for worker in list(self._pool):
            if worker.item is not None and now >= worker.deadline:
                self._replace(worker, worker.item, f"timeout after {worker.item.timeout:g}s")
            elif not worker.ready and now >= worker.started + STARTUP_TIMEOUT_S:
                self._start_failed(worker, f"not ready after {STARTUP_TIMEOUT_S:g}s")

    def _start_failed(self, worker: _Worker, why: str) -> None:
        """A worker died or hung while importing. Retry a few times, then stop: respawning
        forever would spin a core and leave callers waiting on Futures that never resolve."""
        self._start_failures += 1
        if self._start_failures < MAX_START_FAILURES:
            self._replace(worker, None, "")
            return
        self._stop_worker(worker, kill=True)
        self._pool.remove(worker)
        self._fail_everything(f"verifier pool broken: workers fail at start ({why})")

    def _replace(self, worker: _Worker, item: _Item | None, reason: str) -> None:
        """Kill `worker`, reject its item with `reason`, and start a fresh worker in its place."""
        self._stop_worker(worker, kill=True)
        if item is not None:
            _resolve(item, self._verdict(reason))
        index = self._pool.index(worker)
        self._pool[index] = self._start_worker()

    def _fail_everything(self, reason: str) -> None:
        with self._lock:
            self._broken = self._broken or reason
            queued, self._queue = list(self._queue), deque()
        for worker in self._pool:
            if worker.item is not None:
                _resolve(worker.item, self._verdict(reason))
                worker.item = None
        for item in queued:
            if item.future.set_running_or_notify_cancel():
                _resolve(item, self._verdict(reason))

    # ------------------------------------------------------------- worker processes

    def _start_worker(self) -> _Worker:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main, args=(child, self._imports), name="verifier-worker", daemon=True
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def _stop_worker(self, worker: _Worker, kill: bool = False) -> None:
        if not kill and worker.process.is_alive():
            try:
                worker.conn.send(None)
                worker.process.join(timeout=2)
            except (OSError, EOFError):
                pass
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=5)
        worker.conn.close()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    @staticmethod
    def _verdict(reason: str) -> Verdict:
        return Verdict(False, reason, verifier="pool", version=POOL_VERSION)


def usable_cores() -> int:
    """Cores this process may run on: the affinity mask (taskset, a Ray actor's or container's
    cpuset) rather than os.cpu_count(), which counts the whole machine and would oversubscribe."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _resolve(item: _Item, verdict: Verdict) -> None:
    if not item.future.done():
        if item.future.running() or item.future.set_running_or_notify_cancel():
            item.future.set_result(verdict)


def _worker_main(conn: Connection, imports: tuple[str, ...]) -> None:
    """Worker process: load the verifiers, then judge one (problem, completion) per message."""
    from verifiers import base

    # Ctrl-C goes to the whole process group; the parent decides what stops, not each worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        base._load_builtin()
        from verifiers import math as math_verifier

        if hasattr(math_verifier, "set_inline"):
            math_verifier.set_inline(True)
    except Exception:
        pass  # a broken verifier module: its items get a "verifier error" verdict, others work
    for module in imports:
        importlib.import_module(module)
    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if message is None:
            return
        problem, completion, timeout = message
        try:
            with deadline(timeout):
                verdict = verify(problem, completion)
        except Exception as e:
            verdict = Verdict(False, f"verifier error: {type(e).__name__}: {e}"[:500])
        conn.send(verdict)
