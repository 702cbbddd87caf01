"""The local Yandex Cloud emulator for the integration tests: one factory, one default emulator, one HTTP session.

- `start_emu(**options)`: starts an emulator on a free loopback port with those `EmulatorConfig` options (the ones
  the tests vary: `clock`, `time_scale`, `seed`, ...) and stops every one it started when the test ends.
  `start_module_emu` is the same for a module-scoped emulator (tests that only read).
- `emu`: the default, on the test's `clock` (a `ManualClock`: time moves only when the test says so). A module
  that needs other options overrides `emu` with a one-line fixture calling `start_emu`.
- `http`: a `requests.Session` that sends the emulator's token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from local.emulator import EmulatorConfig, EmulatorHandle, ManualClock, start_emulator

StartEmulator = Callable[..., EmulatorHandle]


def _emulators() -> Iterator[StartEmulator]:
    started: list[EmulatorHandle] = []

    def start(**options: Any) -> EmulatorHandle:
        handle = start_emulator(EmulatorConfig(**{"port": 0, **options}))
        started.append(handle)
        assert handle.url.startswith("http://127.0.0.1:")  # loopback only
        return handle

    try:
        yield start
    finally:
        for handle in reversed(started):
            handle.stop()


@pytest.fixture()
def start_emu() -> Iterator[StartEmulator]:
    yield from _emulators()


@pytest.fixture(scope="module")
def start_module_emu() -> Iterator[StartEmulator]:
    yield from _emulators()


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture()
def emu(start_emu: StartEmulator, clock: ManualClock) -> EmulatorHandle:
    return start_emu(clock=clock)


@pytest.fixture()
def http(emu: EmulatorHandle) -> Iterator[requests.Session]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {emu.token}"
    yield session
    session.close()
