"""The heap startup built is frozen while the application serves (``app.frozen_heap``), and unfrozen at shutdown."""

from __future__ import annotations

import gc
import weakref
from typing import Any


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic garbage collector can free it


async def test_startup_objects_are_frozen_while_serving_and_collectable_after(live_server: Any) -> None:
    assert gc.get_freeze_count() == 0
    gc.disable()  # so that the garbage below is still there when startup freezes the heap
    try:
        garbage = _Node()
        probe = weakref.ref(garbage)
        del garbage
        async with live_server() as live:
            gc.enable()
            # Modules, routes and models: some 240,000 objects (at least tens of thousands) no collection needs to walk.
            assert gc.get_freeze_count() > 10_000
            gc.collect()
            assert probe() is not None  # frozen: collections skip it
            assert (await live.http.get("/healthz")).status_code == 200
    finally:
        gc.enable()
    # Shutdown unfreezes: an application started and stopped in a long process leaks nothing.
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert probe() is None
