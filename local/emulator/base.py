"""StateBase: what every part of the emulator state shares: the lock, the clock, id generation, the data.

The state is one object built from parts by job (auth, resources, faults, operations: one module each); this base
declares the data they share, so that each part reads on its own and type-checks without importing the others.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

from local.emulator.config import EmulatorConfig
from local.emulator.records import Application, AuthorizedKey, Instance, Operation, Policy, Subject, TokenInfo

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


class StateBase:
    """Shared data and the clock. Every public method of a part takes the (re-entrant) `lock`."""

    config: EmulatorConfig
    lock: threading.RLock
    _base_clock: Callable[[], float]
    _clock_offset: float
    # settings (reset() sets them from the config)
    time_scale: float
    token_lifetime: float
    default_backup_duration: float
    apply_duration: float
    progress_mode: str
    # data
    subjects: dict[str, Subject]
    tokens: dict[str, TokenInfo]
    keys: dict[str, AuthorizedKey]
    instances: dict[str, Instance]
    policies: dict[str, Policy]
    applications: dict[tuple[str, str], Application]
    operations: dict[str, Operation]
    _unsettled: set[str]
    _running: dict[str, str]  # instance id -> execute operation id
    _idempotency: dict[tuple[str, str], tuple[str, str]]  # (subject, key) -> (fingerprint, operation id)
    _id_rng: random.Random
    _execute_log: list[dict[str, Any]]
    _call_log: list[dict[str, Any]]

    # --- clock --------------------------------------------------------------------------------------------

    def now(self) -> float:
        return self._base_clock() + self._clock_offset

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock forward (on top of the injected or wall clock); returns the new now()."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self.lock:
            self._clock_offset += float(seconds)
            return self.now()

    # --- ids ----------------------------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        with self.lock:
            while True:
                candidate = prefix + "".join(self._id_rng.choice(_ID_ALPHABET) for _ in range(20 - len(prefix)))
                if candidate not in self.operations and candidate not in self.instances:
                    return candidate
