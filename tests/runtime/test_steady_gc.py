"""The cyclic collector's settings while the bridge runs, and after."""

from __future__ import annotations

import gc

import pytest

from mqferry._runtime.run import GC_YOUNG_THRESHOLD, steady_gc


@pytest.fixture
def python_gc():
    """Leave the test process's collector as it was, whatever the test did."""
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)
    gc.unfreeze()


def test_running_raises_the_young_threshold_and_freezes_what_was_built(python_gc):
    built = [object() for _ in range(10)]  # noqa: F841 - alive while the bridge "runs"
    with steady_gc():
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *python_gc[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == python_gc
    assert gc.get_freeze_count() == 0


def test_settings_are_restored_when_the_run_fails(python_gc):
    with pytest.raises(RuntimeError), steady_gc():
        raise RuntimeError("stopped")
    assert gc.get_threshold() == python_gc
    assert gc.get_freeze_count() == 0


def test_cycles_are_still_collected_while_running(python_gc):
    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    collected = []
    with steady_gc():
        for _ in range(GC_YOUNG_THRESHOLD):  # enough garbage cycles to pass the threshold
            a, b = Node(), Node()
            a.other, b.other = b, a
        gc.callbacks.append(lambda phase, info: collected.append(info) if phase == "stop" else None)
        try:
            for _ in range(GC_YOUNG_THRESHOLD):
                a, b = Node(), Node()
                a.other, b.other = b, a
        finally:
            gc.callbacks.pop()
    assert any(info["collected"] > 0 for info in collected)
