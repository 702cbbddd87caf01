"""Secrets named by ARN (AWS deployments): AWS Secrets Manager through adapters.aws, cached per process.

`read_secrets(arns, max_age)` is the fetcher handlers.deps gives `Settings.with_secrets`: every ARN an invocation
needs in ONE `BatchGetSecretValue` round trip (`SecretIdList`), the values kept for `max_age` seconds
(SECRETS_MAX_AGE_SECONDS) across the warm invocations of the process, under a lock (one fetch at a time, so
concurrent threads never fetch the same secrets twice). `BatchGetSecretValue` needs the
`secretsmanager:BatchGetSecretValue` permission on `"*"` (the action has no resource-level scope) plus
`GetSecretValue` on each secret (template.yaml grants both); where the batch call itself is refused (an older
role, an endpoint without it) the same secrets are read with one `GetSecretValue` each, in parallel.

Replaces powertools' parameters utility, which imported boto3 and built its client inside the invocation.
A secret that cannot be read raises `SecretsError` naming its ARN and the service's error code, never a value.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from adapters.aws import SECRETS_MANAGER, AwsError, AwsJsonClient, clean

BATCH = 20  # BatchGetSecretValue: at most 20 ids per SecretIdList
# The batch call itself refused: read each secret alone instead.
NO_BATCH_CODES = frozenset({"AccessDeniedException", "UnknownOperationException", "InvalidAction", "HTTP404"})


class SecretsError(RuntimeError):
    """A secret named by ARN could not be read (the text names the ARN and the reason, never a value)."""


class SecretsCache:
    """ARN -> (value, fetched at), filled by the Secrets Manager client `client` (AwsJsonClient)."""

    def __init__(self, client: AwsJsonClient | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[str, float]] = {}
        self.round_trips = 0  # calls made to the service (tests, the bench)

    @property
    def client(self) -> AwsJsonClient:
        if self._client is None:
            self._client = AwsJsonClient(SECRETS_MANAGER)
        return self._client

    def get(self, arns: Sequence[str], max_age: float) -> dict[str, str]:
        """The value of every ARN: from the cache when younger than `max_age` seconds, else fetched (at once)."""
        with self._lock:
            now = self._clock()
            fresh = {arn: hit[0] for arn in arns if (hit := self._values.get(arn)) and now - hit[1] < max_age}
            missing = sorted({arn for arn in arns if arn not in fresh})
            if missing:
                fetched = self._fetch(missing)
                for arn, value in fetched.items():
                    self._values[arn] = (value, now)
                fresh.update(fetched)
            return {arn: fresh[arn] for arn in arns}

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def _fetch(self, arns: list[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for start in range(0, len(arns), BATCH):
            chunk = arns[start : start + BATCH]
            try:
                values.update(self._batch(chunk))
            except AwsError as exc:
                if exc.code not in NO_BATCH_CODES:
                    raise SecretsError(f"secrets could not be read: {exc}") from None
                values.update(self._one_by_one(chunk))
        return values

    def _batch(self, arns: list[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        params: dict[str, Any] = {"SecretIdList": arns}
        for _ in range(len(arns) + 1):  # NextToken: bounded, a hostile endpoint cannot loop us
            self.round_trips += 1
            reply = self.client.call("BatchGetSecretValue", params)
            for error in _objects(reply.get("Errors")):
                code = clean(str(error.get("ErrorCode", "?")), limit=80)
                raise SecretsError(f"secret {_arn(error.get('SecretId'), arns)} could not be read: {code}")
            for entry in _objects(reply.get("SecretValues")):
                arn = _match(entry, arns)
                if arn is not None:
                    values[arn] = _value(entry, arn)
            token = reply.get("NextToken")
            if not token or len(values) == len(arns):
                break
            params = {"SecretIdList": arns, "NextToken": str(token)}
        for arn in arns:
            if arn not in values:
                raise SecretsError(f"secret {arn} could not be read: not in Secrets Manager's answer")
        return values

    def _one_by_one(self, arns: list[str]) -> dict[str, str]:
        def one(arn: str) -> tuple[str, str]:
            try:
                return arn, _value(self.client.call("GetSecretValue", {"SecretId": arn}), arn)
            except AwsError as exc:
                raise SecretsError(f"secret {arn} could not be read: {exc.code}") from None

        self.round_trips += len(arns)
        with ThreadPoolExecutor(max_workers=min(len(arns), 8)) as pool:
            return dict(pool.map(one, arns))


def _objects(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _match(entry: Mapping[str, Any], arns: Sequence[str]) -> str | None:
    """The ARN asked for that an answer's entry is (Secrets Manager answers with the full ARN and the name)."""
    for key in ("ARN", "Name"):
        if entry.get(key) in arns:
            return str(entry[key])
    # A partial ARN (without the 6 random characters Secrets Manager appends) matches only its own full ARN:
    # `…:secret:foo` must not take the entry of `…:secret:foo-bar-AbCdEf`.
    full = str(entry.get("ARN") or "")
    return next(
        (arn for arn in arns if arn.startswith("arn:") and re.fullmatch(re.escape(arn) + r"-[A-Za-z0-9]{6}", full)),
        None,
    )


def _arn(value: Any, arns: Sequence[str]) -> str:
    return str(value) if value in arns else "(unknown)"


def _value(entry: Mapping[str, Any], arn: str) -> str:
    if isinstance(entry.get("SecretString"), str):
        return str(entry["SecretString"])
    if isinstance(entry.get("SecretBinary"), str):
        try:
            return base64.b64decode(entry["SecretBinary"], validate=True).decode("utf-8")
        except ValueError:
            pass
    raise SecretsError(f"secret {arn} has no text value")


@lru_cache(maxsize=1)
def _default_cache() -> SecretsCache:
    """The process's cache (built on first use, not at import)."""
    return SecretsCache()


def read_secrets(arns: Sequence[str], max_age: float) -> dict[str, str]:
    """ARN -> value for `Settings.with_secrets`, through the process's cache."""
    return _default_cache().get(arns, max_age)
