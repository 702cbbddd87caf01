"""Yandex Cloud Monitoring write API: the metrics of one invocation in one request (adapters.metrics picks it).

Contract (../shared/reference/yandex-monitoring.md): `POST <base>/monitoring/v2/data/write?folderId=&service=custom`
with `Authorization: Bearer <IAM token>` and `{"labels": {...}, "metrics": [{"name", "labels", "type", "ts",
"value"} | {"name", "type", "timeseries": [{"ts", "value"}]}]}`; the answer has `metrics_written` (the guide) or
`writtenMetricsCount` and `errorMessage` (the REST reference), int64 as strings: both are read. Hand-written over
`requests` because the official SDK (`yandexcloud`) is gRPC and far heavier than one POST.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from metrics import BufferedRecorder, MetricName, MetricsWriteError, Point, summed
from observability import SERVICE

if TYPE_CHECKING:
    import requests

# --- Yandex Cloud: Monitoring write API ---------------------------------------------------------------------

MONITORING_ENDPOINT = "https://monitoring.api.cloud.yandex.net"
WRITE_PATH = "/monitoring/v2/data/write"
YANDEX_NAMES: dict[MetricName, str] = {
    "backups_started": "backups.started",
    "backups_succeeded": "backups.succeeded",
    "backups_failed": "backups.failed",
    "backups_timed_out": "backups.timed_out",
    "backup_duration_seconds": "backup.duration_seconds",
    "backup_polls": "backup.polls",
    "sink_failures": "sink.failures",
    "redeliveries": "redeliveries",
    "stale_checked": "messages.stale_checked",
}
WRITE_TIMEOUT = (1.0, 3.0)  # connect, read: metrics must not eat the invocation's time
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
USER_AGENT = "yc-backup-runner (metrics)"
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")

TokenSource = Callable[[], "SecretStr | str"]  # the same as adapters.metrics.TokenSource


class WriteAnswer(BaseModel):
    """The write answer: the guide shows `metrics_written`, the REST reference `writtenMetricsCount` and an
    optional `errorMessage`. Both counts are int64 rendered as strings."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    metrics_written: int | None = None
    written_metrics_count: int | None = Field(default=None, alias="writtenMetricsCount")
    error_message: str | None = Field(default=None, alias="errorMessage")

    @property
    def written(self) -> int | None:
        return self.written_metrics_count if self.written_metrics_count is not None else self.metrics_written


class RpcStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: int | None = None
    message: str | None = None


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _short(text: str | None, limit: int = 200) -> str:
    return _UNPRINTABLE.sub(" ", text or "")[:limit].strip()


def check_monitoring_endpoint(base: str) -> str:
    """The base URL the bearer token may go to: https, or http on a loopback host (the emulator)."""
    parts = urlsplit(base)
    if parts.hostname and (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)):
        return base.rstrip("/")
    raise ValueError(
        f"metrics endpoint must be https:// (http:// only on a loopback host); got scheme {parts.scheme!r} "
        f"for host {parts.hostname or '?'!r}"
    )


@lru_cache(maxsize=1)
def monitoring_session() -> requests.Session:
    """One session per process (connections kept across warm invocations): one retry on a connection error
    or a 503, nothing else (a duplicate write only rewrites the same points)."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    from adapters.delivery import quiet_urllib3_retries

    quiet_urllib3_retries()
    retry = Retry(
        total=1,
        connect=1,
        read=0,
        status=1,
        other=0,
        allowed_methods=frozenset({"POST"}),
        status_forcelist=(503,),
        backoff_factor=0.1,
        respect_retry_after_header=False,
        raise_on_status=False,
    )
    session = requests.Session()
    session.mount("https://", HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=1))
    session.mount("http://", HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=1))
    session.trust_env = False
    session.headers["User-Agent"] = USER_AGENT
    return session


class YandexMonitoringRecorder(BufferedRecorder):
    """Writes the invocation's points in one request. A refused or failed write is one warning, never an error."""

    backend = "yandex"

    def __init__(
        self,
        *,
        folder_id: str,
        token: TokenSource,
        endpoint: str = MONITORING_ENDPOINT,
        app: str = SERVICE,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self._base = check_monitoring_endpoint(endpoint)
        self._host = urlsplit(self._base).hostname or "?"
        self._folder_id = folder_id
        self._token = token
        self._app = app
        self._session = session

    @property
    def url(self) -> str:
        return f"{self._base}{WRITE_PATH}?{urlencode({'folderId': self._folder_id, 'service': 'custom'})}"

    def body(self, points: list[Point]) -> dict[str, Any]:
        """The write body: counts summed per (metric, label) at flush time, each gauge value at its own time."""
        now = self._clock()
        metrics: list[dict[str, Any]] = []
        for (name, label), total in summed(points).items():
            entry: dict[str, Any] = {"name": YANDEX_NAMES[name], "type": "DGAUGE", "ts": _rfc3339(now)}
            if label is not None:
                entry["labels"] = {label[0]: label[1]}
            entry["value"] = total
            metrics.append(entry)
        series: dict[MetricName, list[dict[str, Any]]] = {}
        seen: dict[MetricName, set[str]] = {}
        for point in points:
            if not point.gauge:
                continue
            at = point.at
            stamp = _rfc3339(at)
            while stamp in seen.setdefault(point.name, set()):  # two backups ending in the same millisecond
                at += timedelta(milliseconds=1)
                stamp = _rfc3339(at)
            seen[point.name].add(stamp)
            series.setdefault(point.name, []).append({"ts": stamp, "value": point.value})
        for name, timeseries in series.items():
            metrics.append({"name": YANDEX_NAMES[name], "type": "DGAUGE", "timeseries": timeseries})
        return {"labels": {"app": self._app}, "metrics": metrics}

    def _bearer(self) -> str:
        try:
            value = self._token()
        except Exception as exc:  # token providers raise CloudError with secret-free messages
            raise MetricsWriteError(f"no IAM token for Monitoring: {type(exc).__name__}") from None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if not text.strip():
            raise MetricsWriteError("no IAM token for Monitoring: empty")
        return text.strip()

    def _write(self, points: list[Point]) -> None:
        import requests

        body = self.body(points)
        headers = {"Authorization": f"Bearer {self._bearer()}", "Content-Type": "application/json"}
        session = self._session or monitoring_session()
        try:
            response = session.post(self.url, json=body, headers=headers, timeout=WRITE_TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            raise MetricsWriteError(f"Monitoring at {self._host} unreachable: {type(exc).__name__}") from None
        with response:
            status, payload = response.status_code, _json(response)
        if not 200 <= status < 300:
            rpc = _parse(RpcStatus, payload) or RpcStatus()
            detail = f": {_short(rpc.message)}" if rpc.message else ""
            raise MetricsWriteError(f"Monitoring at {self._host} answered HTTP {status}{detail}")
        answer = _parse(WriteAnswer, payload) or WriteAnswer()
        sent = len(body["metrics"])
        if answer.error_message or (answer.written is not None and answer.written < sent):
            raise MetricsWriteError(
                f"Monitoring at {self._host} wrote {answer.written} of {sent} metrics: "
                f"{_short(answer.error_message) or 'no reason given'}"
            )


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _parse(model: type[Any], payload: Any) -> Any:
    if not isinstance(payload, dict):
        return None
    try:
        return model.model_validate(payload)
    except ValidationError:
        return None
