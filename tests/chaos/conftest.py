"""Fixtures of the chaos tests: a fresh emulator per round, the environment pointed at it and at moto's SQS."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.chaos.harness import ChaosConfig, RoundResult, run_round, serial_sqs


@pytest.fixture()
def serial_sqs_server() -> Iterator[str]:
    """moto's SQS server on 127.0.0.1, one request at a time.

    moto's SQS model is not thread-safe: a DeleteMessage rebuilds the queue's message list while a SendMessage
    appends to it (the message is lost) or a ReceiveMessage moves messages to the dead-letter queue (ValueError,
    and the request never answers). Real SQS and Yandex Message Queue have no such races, and the chaos round
    runs many invocations at once, so this server serialises the requests (the session's `sqs_server` does not).
    Per test: it also speeds moto up while it runs (see harness.serial_sqs), and puts that back afterwards.
    """
    with serial_sqs() as endpoint:
        yield endpoint


@pytest.fixture()
def chaos_emulator() -> Iterator[Any]:
    from local.emulator import EmulatorConfig, start_emulator

    emulator = start_emulator(EmulatorConfig(port=0, time_scale=100.0))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture()
def quiet_logs() -> Iterator[None]:
    """Thousands of invocations: keep the function's JSON log lines (and moto's request lines) out of the way."""
    from observability import get_logger

    logger = get_logger()
    level = logger.log_level
    logger.setLevel("CRITICAL")
    werkzeug = logging.getLogger("werkzeug")
    werkzeug_level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
        werkzeug.setLevel(werkzeug_level)


@pytest.fixture()
def chaos_round(
    chaos_emulator: Any, serial_sqs_server: str, monkeypatch: pytest.MonkeyPatch, quiet_logs: None
) -> Iterator[Callable[[ChaosConfig], RoundResult]]:
    """Runs one chaos round (tests.chaos.harness.run_round) against this test's emulator."""

    import adapters.sqs
    from ycloud.auth import clear_token_cache

    def run(config: ChaosConfig) -> RoundResult:
        return run_round(
            config,
            state=chaos_emulator.state,
            emulator_url=chaos_emulator.url,
            token=chaos_emulator.token,
            sqs_endpoint=serial_sqs_server,
            setenv=monkeypatch.setenv,
            delenv=lambda name: monkeypatch.delenv(name, raising=False),
        )

    # Process-wide caches filled from what the environment said (the function's SQS client: its endpoint;
    # tokens): warm-start caches, which must not carry another test's endpoints into this one, or this one's out.
    adapters.sqs._client.cache_clear()
    clear_token_cache()
    yield run
    adapters.sqs._client.cache_clear()
    clear_token_cache()
