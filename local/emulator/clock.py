"""A manual clock to inject into EmulatorConfig(clock=...): time moves only when told to."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

DEFAULT_START = datetime(2026, 2, 1, 9, 0, tzinfo=UTC).timestamp()


class ManualClock:
    """Callable returning epoch seconds; `advance(seconds)` moves it forward. Thread-safe."""

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        with self._lock:
            self._now = float(when)
