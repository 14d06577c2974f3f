"""What every request to a source costs in the hub's HTTP client, whatever the connector."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

from httpcore._synchronization import current_async_library


class _CountingFinder:
    """A meta path finder that finds nothing and counts how often the import system asked it."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        self.asked.append(name)
        return None

    def invalidate_caches(self) -> Any:
        return None


async def test_the_event_loop_is_known_without_searching_for_a_module() -> None:
    """httpcore asks which event loop runs (through sniffio) several times per request: that
    must be a dictionary look-up, not a failed import that searches the whole sys.path."""
    finder = _CountingFinder()
    sys.meta_path.insert(0, finder)
    try:
        for _ in range(10):
            assert current_async_library() == "asyncio"
    finally:
        sys.meta_path.remove(finder)
    assert finder.asked == []
