"""Metrics adapters: CloudWatch EMF (powertools) on AWS, the Monitoring write API on Yandex Cloud.

`build_metrics(settings, platform=..., context=..., token=...)` picks one per invocation:

| METRICS_ENABLED | METRICS_BACKEND | recorder |
|---|---|---|
| false | any | `NullRecorder` |
| true | `none` | `NullRecorder` |
| true | `emf` | `EmfRecorder`: one EMF JSON line per dimension set on stdout, namespace METRICS_NAMESPACE |
| true | `yandex` | `YandexMonitoringRecorder`: one `POST /monitoring/v2/data/write` per invocation |
| true | `auto` (default) | `emf` on AWS (platform `aws` or an AWS context), `yandex` on Yandex Cloud |

Yandex writes go to `https://monitoring.api.cloud.yandex.net` (or YC_API_ENDPOINT, the emulator) with
`folderId=METRICS_FOLDER_ID` (default FOLDER_ID) and `service=custom`, authorised by the function's IAM token
(the service account needs `monitoring.editor`). Every value is a DGAUGE: a count is the number of events in
one invocation (add them up over a window), a duration or poll count is one backup's value, stamped with the
time it finished. The common label `app` carries METRICS_NAMESPACE.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from metrics import (
    BufferedRecorder,
    MetricName,
    MetricsRecorder,
    MetricsWriteError,
    NullRecorder,
    Point,
    summed,
)
from observability import SERVICE, get_logger

if TYPE_CHECKING:
    import requests

    from settings import Settings

__all__ = ["EmfRecorder", "YandexMonitoringRecorder", "build_metrics", "recording"]

# --- AWS: CloudWatch embedded metric format through powertools ----------------------------------------------

EMF_NAMES: dict[MetricName, tuple[str, str]] = {  # neutral name -> (CloudWatch metric name, unit)
    "backups_started": ("BackupsStarted", "Count"),
    "backups_succeeded": ("BackupsSucceeded", "Count"),
    "backups_failed": ("BackupsFailed", "Count"),
    "backups_timed_out": ("BackupsTimedOut", "Count"),
    "backup_duration_seconds": ("BackupDuration", "Seconds"),
    "backup_polls": ("BackupPolls", "Count"),
    "sink_failures": ("SinkFailures", "Count"),
    "redeliveries": ("Redeliveries", "Count"),
}
EMF_DIMENSIONS = {"error_code": "ErrorCode", "sink": "Sink"}


class EmfRecorder(BufferedRecorder):
    """EMF lines in the function's log; CloudWatch turns them into metrics, no API call, no extra IAM.

    Every metric has the dimension `service` (`yc-backup-runner`). `BackupsFailed` and `SinkFailures` are also
    published per `ErrorCode` / `Sink` (a second dimension set in the same line), so the alarms watch the total
    and a dashboard can break it down. Uses powertools' `EphemeralMetrics`: plain `Metrics` instances share one
    metric set per process, which would mix invocations.
    """

    backend = "emf"

    def __init__(self, namespace: str, *, service: str = SERVICE, clock: Callable[[], datetime] | None = None):
        super().__init__(clock=clock)
        self.namespace = namespace
        self.service = service

    def _write(self, points: list[Point]) -> None:
        from aws_lambda_powertools.metrics import EphemeralMetrics

        main = EphemeralMetrics(namespace=self.namespace, service=self.service)
        by_label: dict[tuple[str, str], Any] = {}
        for (name, label), total in summed(points).items():
            metric, unit = EMF_NAMES[name]
            if label is None:
                main.add_metric(name=metric, unit=unit, value=total)
                continue
            if label not in by_label:
                blob = EphemeralMetrics(
                    namespace=self.namespace, service=self.service, default_dimensions={"service": self.service}
                )
                blob.add_dimensions(**{EMF_DIMENSIONS[label[0]]: label[1]})
                by_label[label] = blob
            by_label[label].add_metric(name=metric, unit=unit, value=total)
        for point in points:
            if point.gauge:
                metric, unit = EMF_NAMES[point.name]
                main.add_metric(name=metric, unit=unit, value=point.value)
        for blob in (main, *by_label.values()):
            if blob.metric_set:
                blob.flush_metrics()


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
}
WRITE_TIMEOUT = (1.0, 3.0)  # connect, read: metrics must not eat the invocation's time
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
USER_AGENT = "yc-backup-runner (metrics)"
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")

TokenSource = Callable[[], "SecretStr | str"]


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


# --- choosing one -------------------------------------------------------------------------------------------

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    """Configuration warnings: once per process, not once per invocation."""
    if key not in _warned:
        _warned.add(key)
        get_logger().warning(message)


def build_metrics(
    settings: Settings,
    *,
    platform: str | None = None,
    context: Any = None,
    token: TokenSource | None = None,
    session: requests.Session | None = None,
) -> MetricsRecorder:
    """The recorder for one invocation (see the module docstring). Makes no network call; never raises."""
    if not settings.metrics_enabled or settings.metrics_backend == "none":
        return NullRecorder()
    backend = settings.metrics_backend
    if backend == "auto":
        if platform == "aws" or getattr(context, "invoked_function_arn", None):
            backend = "emf"
        elif platform == "yandex" or token is not None:
            backend = "yandex"
        else:
            return NullRecorder()
    if backend == "emf":
        return EmfRecorder(settings.metrics_namespace)
    folder_id = settings.metrics_folder_id or settings.folder_id
    if not folder_id:
        _warn_once("folder", "metrics off: METRICS_FOLDER_ID and FOLDER_ID are not set (Monitoring needs a folder)")
        return NullRecorder()
    if token is None:
        _warn_once("token", "metrics off: no IAM token source for the Monitoring write API")
        return NullRecorder()
    try:
        return YandexMonitoringRecorder(
            folder_id=folder_id,
            token=token,
            endpoint=settings.yc_api_endpoint or MONITORING_ENDPOINT,
            app=settings.metrics_namespace,
            session=session,
        )
    except ValueError as exc:
        _warn_once("endpoint", f"metrics off: {exc}")
        return NullRecorder()


@contextmanager
def recording(recorder: MetricsRecorder) -> Iterator[MetricsRecorder]:
    """`with recording(build_metrics(...)) as metrics:` flushes once when the invocation ends, even on error."""
    try:
        yield recorder
    finally:
        recorder.flush()
