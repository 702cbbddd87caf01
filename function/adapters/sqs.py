"""The SQS-protocol queue adapter: Amazon SQS and Yandex Message Queue (adapters.aws).

`SendMessageBatch` over SQS's JSON protocol (`X-Amz-Target: AmazonSQS.SendMessageBatch`,
`application/x-amz-json-1.0`, as botocore 1.43 speaks to SQS), or over the query protocol that Yandex Message
Queue's API reference documents (adapters.sqs_query; SQS_PROTOCOL, `protocol_for`). The endpoint is
`AWS_ENDPOINT_URL_SQS` (or `AWS_ENDPOINT_URL`) when set, else the queue URL's own origin:
`https://sqs.<region>.amazonaws.com` for Amazon SQS, `https://message-queue.api.cloud.yandex.net` (region
`ru-central1`) for Yandex Message Queue, a local moto server in the tests. Credentials and region: adapters.aws.

Not botocore: its import and SQS data cost ~0.1 s of CPU per cold start (adapters.aws says what was measured).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from adapters import sqs_query
from adapters.aws import SQS, AwsError, AwsJsonClient, AwsUnreachable, clean, origin
from backups.ports import QueueError

YMQ_HOST = "message-queue.api.cloud.yandex.net"
MAX_DELAY_SECONDS = 900  # the SQS and YMQ limit on DelaySeconds
BATCH = 10  # entries per SendMessageBatch


@lru_cache(maxsize=4)
def _client(endpoint_url: str | None) -> AwsJsonClient:
    """One client (one connection pool) per endpoint override and process; the environment is read per call."""
    return AwsJsonClient(SQS, endpoint=endpoint_url)


# A send that someone waits for (the hand-off before a Slack answer): one attempt, short timeouts, so a slow queue
# gives "try again" within Slack's 3 s rather than the default client's up to 4 attempts of 3 + 10 s.
QUICK_TIMEOUTS = (0.5, 1.5)  # connect, read


@lru_cache(maxsize=4)
def _quick_client(endpoint_url: str | None) -> AwsJsonClient:
    return AwsJsonClient(SQS, endpoint=endpoint_url, max_attempts=1, timeouts=QUICK_TIMEOUTS)


def protocol_for(queue_url: str, client: AwsJsonClient) -> str:
    """ "query" or "json": SQS_PROTOCOL when it says one, else (auto) query for Yandex Message Queue, whose API
    reference documents only that (adapters.sqs_query), and JSON for everything else. Raises AwsError for a value
    that is neither."""
    chosen = (client.environ.get("SQS_PROTOCOL") or "auto").strip().lower()
    if chosen in ("json", "query"):
        return chosen
    if chosen != "auto":
        raise AwsError("SendMessageBatch", "InvalidConfiguration", "SQS_PROTOCOL must be auto, json or query")
    endpoint, _ = client.resolve(origin(queue_url))
    return "query" if urlsplit(endpoint).hostname == YMQ_HOST else "json"


class SqsQueue:
    """MessageQueue over SQS's JSON protocol. `client` is injectable for tests (an AwsJsonClient)."""

    def __init__(
        self, client: AwsJsonClient | None = None, endpoint_url: str | None = None, *, resend_failed: bool = True
    ) -> None:
        self._client = client
        self._endpoint_url = endpoint_url
        self._resend_failed = resend_failed  # False: one call only (someone waits: `quick`)

    @classmethod
    def quick(cls, endpoint_url: str | None = None) -> SqsQueue:
        """A queue for a send someone waits for: one attempt within ~2 s (QUICK_TIMEOUTS)."""
        return cls(client=_quick_client(endpoint_url), resend_failed=False)

    def _sqs(self) -> AwsJsonClient:
        if self._client is None:
            self._client = _client(self._endpoint_url)
        return self._client

    def _batch(self, queue_url: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
        client = self._sqs()
        if protocol_for(queue_url, client) == "query":
            return sqs_query.send_message_batch(client, queue_url, entries, endpoint=origin(queue_url))
        return client.call("SendMessageBatch", {"QueueUrl": queue_url, "Entries": entries}, endpoint=origin(queue_url))

    def send(self, queue_url: str, body: str, *, delay_seconds: int = 0) -> str:
        return self.send_many(queue_url, [body], delay_seconds=delay_seconds)[0]

    def send_many(self, queue_url: str, bodies: Sequence[str], *, delay_seconds: int = 0) -> list[str]:
        delay = max(0, min(int(delay_seconds), MAX_DELAY_SECONDS))
        ids: list[str] = []
        for start in range(0, len(bodies), BATCH):
            chunk = bodies[start : start + BATCH]
            entries = [{"Id": str(i), "MessageBody": body, "DelaySeconds": delay} for i, body in enumerate(chunk)]
            try:
                reply = self._batch(queue_url, entries)
                failed = _entries(reply, "Failed")
                if failed and not self._resend_failed:
                    codes = sorted({_code(f) for f in failed})
                    raise QueueError(f"{len(failed)} message(s) not sent to the queue: {codes}")
                if failed:
                    # Retry the failed entries once: batch failures are usually throttling of single entries.
                    indexes = {i for f in failed if (i := _index(f, len(entries))) is not None}
                    retry = [entries[i] for i in sorted(indexes)]
                    again = self._batch(queue_url, retry) if retry else {"Failed": failed}
                    still = _entries(again, "Failed")
                    if still or len(retry) < len(failed):
                        codes = sorted({_code(f) for f in still or failed})
                        raise QueueError(f"{len(still or failed)} message(s) not sent to the queue: {codes}")
                    reply["Successful"] = _entries(reply, "Successful") + _entries(again, "Successful")
            except AwsUnreachable as exc:
                raise QueueError(f"queue unreachable: {exc.code}") from None
            except AwsError as exc:
                raise QueueError(f"queue refused the message: {exc.code}: {exc.message}") from None
            by_id = {str(s.get("Id")): str(s.get("MessageId")) for s in _entries(reply, "Successful")}
            missing = [str(i) for i in range(len(chunk)) if str(i) not in by_id]
            if missing:
                raise QueueError(f"the queue's answer has no message id for {len(missing)} message(s)")
            ids.extend(by_id[str(i)] for i in range(len(chunk)))
        return ids


def _entries(reply: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """reply[key] as a list of objects; anything else in a (hostile or broken) answer counts as none."""
    value = reply.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _index(entry: dict[str, Any], size: int) -> int | None:
    try:
        index = int(entry.get("Id", ""))
    except (TypeError, ValueError):
        return None
    return index if 0 <= index < size else None


def _code(entry: dict[str, Any]) -> str:
    return clean(str(entry.get("Code", "?")), limit=64)
