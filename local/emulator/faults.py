"""Fault injection: rules matched per request (latency, 429/503, dropped connections), drawn from a seeded RNG."""

from __future__ import annotations

import fnmatch
import random
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass
class FaultRule:
    """Faults for requests whose path matches `path` (fnmatch, e.g. "/backup/v1/policies/*:execute", "*").

    One random draw per matching request picks at most one of: drop (close the connection without an answer,
    request not processed), 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, drop_response (request processed, then the
    connection is closed without an answer). `latency` (+ uniform `latency_jitter`) real seconds are added
    before answering. `times`: at most that many faults are injected by this rule, then it only adds latency.
    The first rule (in order) matching the method and path applies.
    """

    path: str = "*"
    methods: list[str] | None = None
    rate_429: float = 0.0
    rate_503: float = 0.0
    retry_after: float | None = None  # seconds, sent as Retry-After on injected 429/503
    latency: float = 0.0
    latency_jitter: float = 0.0
    drop_rate: float = 0.0
    drop_response_rate: float = 0.0
    times: int | None = None
    spent: int = field(default=0, init=False)  # faults injected so far by this rule

    def __post_init__(self) -> None:
        for name in ("rate_429", "rate_503", "drop_rate", "drop_response_rate"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
            setattr(self, name, value)
        total = self.rate_429 + self.rate_503 + self.drop_rate + self.drop_response_rate
        if total > 1.0 + 1e-9:
            raise ValueError("the fault rates of one rule add up to more than 1")
        if self.latency < 0 or self.latency_jitter < 0:
            raise ValueError("latency must be >= 0")
        if self.methods is not None:
            self.methods = [m.upper() for m in self.methods]

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method.upper() not in self.methods:
            return False
        return fnmatch.fnmatchcase(path, self.path)


@dataclass
class FaultDecision:
    latency: float = 0.0
    action: str | None = None  # None | "drop" | "429" | "503" | "drop_response"
    retry_after: float | None = None
    rule: int | None = None


class FaultsPart:
    """The fault rules of the state (first match wins) and their RNG."""

    lock: threading.RLock
    faults: list[FaultRule]
    _fault_rng: random.Random

    def reset_faults(self, seed: str | int) -> None:
        self.faults = []
        self._fault_rng = random.Random(f"faults:{seed}")

    def set_faults(self, rules: Iterable[FaultRule | dict[str, Any]], *, seed: str | int | None = None) -> None:
        """Replace the fault rules (first match wins); a seed restarts the fault RNG for a repeatable run."""
        parsed = [replace(r) if isinstance(r, FaultRule) else FaultRule(**r) for r in rules]  # fresh counters
        with self.lock:
            self.faults = parsed
            if seed is not None:
                self._fault_rng = random.Random(f"faults:{seed}")

    def add_fault(self, rule: FaultRule | None = None, **kwargs: Any) -> FaultRule:
        """Insert a rule in front of the others (so a per-path rule added after a global one takes precedence)."""
        new = replace(rule) if rule is not None else FaultRule(**kwargs)
        with self.lock:
            self.faults.insert(0, new)
            return new

    def clear_faults(self) -> None:
        self.set_faults([])

    def fault_rules(self) -> list[dict[str, Any]]:
        with self.lock:
            return [asdict(r) for r in self.faults]

    def draw_fault(self, method: str, path: str) -> FaultDecision:
        with self.lock:
            for index, rule in enumerate(self.faults):
                if not rule.matches(method, path):
                    continue
                decision = FaultDecision(latency=rule.latency, retry_after=rule.retry_after, rule=index)
                if rule.latency_jitter:
                    decision.latency += self._fault_rng.uniform(0.0, rule.latency_jitter)
                if rule.times is not None and rule.spent >= rule.times:
                    return decision
                r = self._fault_rng.random()
                edge = 0.0
                for action, rate in (
                    ("drop", rule.drop_rate),
                    ("429", rule.rate_429),
                    ("503", rule.rate_503),
                    ("drop_response", rule.drop_response_rate),
                ):
                    edge += rate
                    if rate > 0 and r < edge:
                        decision.action = action
                        rule.spent += 1
                        break
                return decision
            return FaultDecision()
