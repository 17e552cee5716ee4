"""``jq(program, data[, timeout_ms])``: run a jq program, as EMQX's rule SQL does.

The jq library keeps Python's interpreter lock while a program runs, so a thread could not stop
a runaway program. Programs therefore run in worker processes (spawned on first use, at most
:data:`MAX_WORKERS`, compiled programs cached there), each owned through its
``multiprocessing.Process`` handle and a pipe.

Every call is bounded: the caller's timeout is capped at :data:`MAX_TIMEOUT_MS`, and it covers both
the wait for a free worker and the run. A program that passes it fails the call (the rule counts a
``failed.exception``), and its worker is killed and replaced on a later call, so later calls are
not stuck. Starting a worker does not count against a program's timeout (it is bounded by
:data:`START_TIMEOUT_S`).

A call blocks the calling thread until the result or the timeout. It is safe to call from several
threads at once; each call has a worker to itself.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from mqferry._rules.functions._args import BadArg, as_int, as_text

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["ARITY", "DEFAULT_TIMEOUT_MS", "FUNCTIONS", "MAX_TIMEOUT_MS", "MAX_WORKERS",
           "START_TIMEOUT_S"]

#: The timeout when the call gives none: EMQX's ``rule_engine.jq_function_default_timeout``.
DEFAULT_TIMEOUT_MS = 10_000
#: The longest a call may take, whatever timeout it asks for.
MAX_TIMEOUT_MS = 10_000
#: Worker processes running programs at the same time; more calls wait for a free one.
MAX_WORKERS = 2
#: The longest a new worker may take to start (spawning a Python interpreter, importing jq).
START_TIMEOUT_S = 30.0
#: How long past its caller's timeout a worker lets a program run before the kernel ends the
#: worker itself: the bound that holds when mqferry is gone and cannot kill it (``kill -9``).
ORPHAN_GRACE_S = 1.0


@functools.lru_cache(maxsize=256)
def _compile(program: str) -> Any:
    # Imported here: only the worker runs jq, and a bridge without jq rules never loads it
    import jq

    return jq.compile(program)


def _serve(conn: Connection) -> None:
    """The worker process: answer ``(program, data, limit_s)`` requests until the pipe closes.

    Each program runs under a real-time alarm of ``limit_s`` seconds left at the default action,
    so the kernel ends the worker even while jq holds the interpreter lock and even when its
    parent died without killing it.
    """
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    conn.send(("ready", None))
    while True:
        try:
            program, data, limit_s = conn.recv()
        except EOFError:
            return
        signal.setitimer(signal.ITIMER_REAL, limit_s)
        try:
            reply: tuple[str, Any] = ("ok", _compile(program).input_value(data).all())
        except Exception as exc:  # every failure goes back to the caller, as text
            reply = ("error", str(exc))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        conn.send(reply)


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self) -> None:
        # Imported here, like jq: multiprocessing costs every bridge memory, and only a jq
        # call needs it. spawn, not fork: the parent runs an event loop and other threads.
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child,), name="mqferry-jq", daemon=True)
        self._process.start()
        child.close()
        try:
            ready = self._conn.poll(START_TIMEOUT_S) and self._conn.recv() == ("ready", None)
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise BadArg("the jq worker process did not start")

    def run(self, program: str, data: Any, timeout_s: float) -> tuple[str, Any] | None:
        """The worker's reply, or None when it gave none within ``timeout_s``.

        Raises:
            EOFError: the worker died.
            OSError: the pipe to the worker is broken.
        """
        self._conn.send((program, data, max(timeout_s, 0.0) + ORPHAN_GRACE_S))
        if not self._conn.poll(max(timeout_s, 0.0)):
            return None
        reply: tuple[str, Any] = self._conn.recv()
        return reply

    def alive(self) -> bool:
        """Whether the worker process still runs."""
        return self._process.is_alive()

    def kill(self) -> None:
        """Stop the process at once and release the pipe."""
        self._process.kill()
        self._process.join(timeout=5.0)
        self._conn.close()


class _Pool:
    """Up to ``size`` workers, each lent to one call at a time."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._idle: list[_Worker] = []
        self._live = 0
        self._cond = threading.Condition()

    def take(self, wait_s: float) -> tuple[_Worker, float] | None:
        """A worker and the seconds spent waiting for one to be free (starting one is not
        counted), or None when none was free within ``wait_s``."""
        began = time.monotonic()
        with self._cond:
            while not self._idle and self._live >= self._size:
                remaining = began + wait_s - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            waited = time.monotonic() - began
            if self._idle:
                return self._idle.pop(), waited
            self._live += 1
        try:
            return _Worker(), waited
        except BaseException:
            self._forget()
            raise

    def give_back(self, worker: _Worker) -> None:
        """Return a worker that answered, for the next call."""
        with self._cond:
            self._idle.append(worker)
            self._cond.notify()

    def discard(self, worker: _Worker) -> None:
        """Kill a worker that did not answer; a later call starts a new one."""
        worker.kill()
        self._forget()

    def _forget(self) -> None:
        with self._cond:
            self._live -= 1
            self._cond.notify()


_pool = _Pool(MAX_WORKERS)


def _check(program: str) -> None:
    try:
        _compile(program)
    except ValueError as exc:
        raise BadArg(f"invalid jq program: {exc}") from None


def jq(program: Any, data: Any, timeout_ms: Any = DEFAULT_TIMEOUT_MS) -> list[Any]:
    """The list of results of a jq ``program`` on ``data`` (a JSON string or a value).

    ``timeout_ms`` is capped at :data:`MAX_TIMEOUT_MS`.
    """
    program = as_text(program, "jq program")
    _check(program)
    timeout = as_int(timeout_ms, "timeout in milliseconds")
    if timeout <= 0:
        raise BadArg(f"the jq timeout must be positive, got {timeout}")
    timeout = min(timeout, MAX_TIMEOUT_MS)
    if isinstance(data, str | bytes):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise BadArg("jq input is not valid JSON") from None

    taken = _pool.take(timeout / 1000)
    if taken is not None and taken[1] >= timeout / 1000:
        _pool.give_back(taken[0])
        taken = None
    if taken is None:
        raise BadArg(f"jq program timed out after {timeout} ms waiting for a free jq worker")
    worker, waited = taken
    reply: tuple[str, Any] | None = None
    try:
        reply = worker.run(program, data, timeout / 1000 - waited)
    except (EOFError, OSError):
        raise BadArg("the jq worker process died") from None
    finally:
        # A worker that did not answer may still be running the program: never lend it again.
        if reply is None:
            _pool.discard(worker)
        else:
            _pool.give_back(worker)
    if reply is None:
        raise BadArg(f"jq program timed out after {timeout} ms")
    status, value = reply
    if status != "ok":
        raise BadArg(f"jq program failed: {value}")
    result: list[Any] = value
    return result


FUNCTIONS: dict[str, Callable[..., Any]] = {"jq": jq}
ARITY: dict[str, tuple[int, int | None]] = {"jq": (2, 3)}
