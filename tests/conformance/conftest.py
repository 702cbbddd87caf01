"""Fixtures: the emulator, and a requests session that records every exchange the client really sends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from local.emulator import EmulatorConfig, EmulatorHandle, ManualClock, start_emulator
from settings import Settings
from ycloud import auth
from ycloud.client import YandexCloud
from ycloud.transport import RetryPolicy

FAST_RETRIES = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_cap=0.05)


@dataclass(frozen=True)
class Exchange:
    method: str
    url: str
    body: bytes | str | None
    status: int
    text: str


class RecordingSession(requests.Session):
    """A plain session whose response hook keeps (request as prepared, answer as received)."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self.exchanges: list[Exchange] = []
        self.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        req = response.request
        self.exchanges.append(Exchange(str(req.method), str(req.url), req.body, response.status_code, response.text))


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock(time.time())  # the client signs its JWT with the wall clock


@pytest.fixture()
def emu(clock: ManualClock) -> Iterator[EmulatorHandle]:
    handle = start_emulator(EmulatorConfig(port=0, time_scale=60.0, clock=clock))
    auth.clear_token_cache()
    try:
        yield handle
    finally:
        handle.stop()
        auth.clear_token_cache()


@pytest.fixture()
def session() -> RecordingSession:
    return RecordingSession()


def make_client(emu: EmulatorHandle, session: requests.Session, **env: str) -> YandexCloud:
    values = {"YC_API_ENDPOINT": emu.url, "YC_IAM_TOKEN": emu.token, **env}
    settings = Settings.from_env({k: v for k, v in values.items() if v})
    return YandexCloud.from_settings(settings, session=session, retry=FAST_RETRIES)
