"""``jq(program, data[, timeout_ms])``: run a jq program, as EMQX's rule SQL does.

The jq library keeps Python's interpreter lock while a program runs, so a thread could not stop
a runaway program. Programs therefore run in one worker process (started on first use, compiled
programs cached there). A program that passes its timeout fails the call (the rule counts a
``failed.exception``) and the worker is killed and replaced, so later calls are not stuck.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import functools
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import jq as _jq
import orjson

from mqferry.rules.functions._args import BadArg, as_int, as_text

__all__ = ["ARITY", "DEFAULT_TIMEOUT_MS", "FUNCTIONS"]

#: EMQX's ``rule_engine.jq_function_default_timeout``.
DEFAULT_TIMEOUT_MS = 10_000

_lock = threading.Lock()
_pool: concurrent.futures.ProcessPoolExecutor | None = None


def _executor() -> concurrent.futures.ProcessPoolExecutor:
    global _pool  # noqa: PLW0603 - one lazily started worker for the whole process
    with _lock:
        if _pool is None:
            # spawn, not fork: the parent runs an event loop and other threads
            _pool = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"))
            # start the worker now, so its start-up never counts against a program's timeout
            _pool.submit(int).result()
        return _pool


def _kill_worker() -> None:
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)


@functools.lru_cache(maxsize=256)
def _compile(program: str) -> Any:
    return _jq.compile(program)


def _check(program: str) -> None:
    try:
        _compile(program)
    except ValueError as exc:
        raise BadArg(f"invalid jq program: {exc}") from None


def _run(program: str, data: Any) -> list[Any]:
    # runs in the worker process
    out: list[Any] = _compile(program).input_value(data).all()
    return out


def jq(program: Any, data: Any, timeout_ms: Any = DEFAULT_TIMEOUT_MS) -> list[Any]:
    """The list of results of a jq ``program`` on ``data`` (a JSON string or a value)."""
    program = as_text(program, "jq program")
    _check(program)
    timeout = as_int(timeout_ms, "timeout in milliseconds")
    if isinstance(data, str | bytes):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise BadArg("jq input is not valid JSON") from None

    future = _executor().submit(_run, program, data)
    try:
        return future.result(timeout=timeout / 1000)
    except concurrent.futures.TimeoutError:
        _kill_worker()
        raise BadArg(f"jq program timed out after {timeout} ms") from None
    except concurrent.futures.process.BrokenProcessPool:
        _kill_worker()
        raise BadArg("the jq worker process died") from None
    except ValueError as exc:
        raise BadArg(f"jq program failed: {exc}") from None


FUNCTIONS: dict[str, Callable[..., Any]] = {"jq": jq}
ARITY: dict[str, tuple[int, int | None]] = {"jq": (2, 3)}
