"""Metrics adapters: CloudWatch EMF (powertools) on AWS, the Monitoring write API on Yandex Cloud.

`build_metrics(settings, platform=..., context=..., token=...)` picks one per invocation:

| METRICS_ENABLED | METRICS_BACKEND | recorder |
|---|---|---|
| false | any | `NullRecorder` |
| true | `none` | `NullRecorder` |
| true | `emf` | `EmfRecorder`: one EMF JSON line per dimension set on stdout, namespace METRICS_NAMESPACE |
| true | `yandex` | `YandexMonitoringRecorder`: one `POST /monitoring/v2/data/write` per invocation |
| true | `auto` (default) | `emf` on AWS (platform `aws` or an AWS context), `yandex` on Yandex Cloud |

The Yandex writer lives in adapters.monitoring, imported only when chosen (its answer models would cost import
time on AWS for nothing). It writes to `https://monitoring.api.cloud.yandex.net` (or YC_API_ENDPOINT, the
emulator) with `folderId=METRICS_FOLDER_ID` (default FOLDER_ID) and `service=custom`, with the function's IAM token
(the service account needs `monitoring.editor`). Every value is a DGAUGE: a count is the number of events in
one invocation (add them up over a window), a duration or poll count is one backup's value, stamped with the
time it finished. The common label `app` carries METRICS_NAMESPACE.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from metrics import (
    BufferedRecorder,
    MetricName,
    MetricsRecorder,
    NullRecorder,
    Point,
    summed,
)
from observability import SERVICE, get_logger

if TYPE_CHECKING:
    import requests
    from pydantic import SecretStr

    from settings import Settings

__all__ = ["EmfRecorder", "TokenSource", "build_metrics", "recording"]

TokenSource = Callable[[], "SecretStr | str"]  # the function's IAM token, asked for at flush time

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
    "stale_checked": ("StaleTicketsChecked", "Count"),
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
    from adapters.monitoring import MONITORING_ENDPOINT, YandexMonitoringRecorder

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
