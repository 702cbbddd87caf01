"""What one invocation works with: settings, the cloud client, the queue, the sinks, the clock.

Built fresh per invocation from the environment (`Deps.from_env`); tests pass their own fields
(a fake cloud, a moto-backed queue, recording sinks, a frozen clock). Clients are built only when
an invocation needs them, and the expensive parts (the HTTP sessions, the secrets, tokens) are
cached by their own modules across warm invocations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adapters.metrics import build_metrics
from adapters.secrets import read_secrets
from backups.models import ReplyTarget
from backups.ports import Clock, MessageQueue, ResultSink, SystemClock
from backups.run import Ports
from metrics import MetricsRecorder, NullRecorder
from settings import Settings

if TYPE_CHECKING:
    from backups.ports import CloudApi


def _cloud_from_settings(settings: Settings, context: Any) -> CloudApi:
    from ycloud.client import YandexCloud

    return YandexCloud.from_settings(settings, context=context)


def _sqs_queue() -> MessageQueue:
    from adapters.sqs import SqsQueue

    return SqsQueue()


def _quick_sqs_queue() -> MessageQueue:
    from adapters.sqs import SqsQueue

    return SqsQueue.quick()


@dataclass
class Deps:
    settings: Settings
    cloud_factory: Callable[[Settings, Any], CloudApi] = _cloud_from_settings
    queue_factory: Callable[[], MessageQueue] = _sqs_queue
    clock: Clock = field(default_factory=SystemClock)
    # reply target -> sinks; None: the sinks the environment configures (adapters.sinks.build_sinks)
    sinks_factory: Callable[[ReplyTarget | None], list[ResultSink]] | None = None
    # (platform, context) -> the metrics recorder of one invocation; None: adapters.metrics.build_metrics
    metrics_factory: Callable[[str, Any], MetricsRecorder] | None = None
    _queue: MessageQueue | None = None
    _metrics: MetricsRecorder | None = None

    @classmethod
    def from_env(cls) -> Deps:
        return cls(settings=Settings.from_env().with_secrets(read_secrets))

    def cloud(self, context: Any) -> CloudApi:
        return self.cloud_factory(self.settings, context)

    @property
    def quick_queue(self) -> MessageQueue:
        """The queue for a send someone waits for (the Slack hand-off): one short attempt. An injected
        `queue_factory` (tests) serves this too."""
        return _quick_sqs_queue() if self.queue_factory is _sqs_queue else self.queue

    @property
    def queue(self) -> MessageQueue:
        if self._queue is None:
            self._queue = self.queue_factory()
        return self._queue

    def ports(self, context: Any, cloud: CloudApi | None = None, metrics: MetricsRecorder | None = None) -> Ports:
        """The domain's ports for this invocation (`cloud`: one already built, e.g. bounded for Slack; `metrics`: a
        recorder of one message, e.g. metrics.Settled, else the invocation's)."""
        return Ports(
            cloud=cloud if cloud is not None else self.cloud(context),
            settings=self.settings,
            queue=self.queue,
            sinks=self.sinks,
            clock=self.clock,
            metrics=metrics or self._metrics or NullRecorder(),
        )

    @contextmanager
    def recording(self, platform: str, context: Any) -> Iterator[MetricsRecorder]:
        """`with deps.recording(platform, context) as metrics:` around one invocation: the ports it hands out
        record into this recorder, flushed once at the end (never raising)."""
        self._metrics = self._build_metrics(platform, context)
        try:
            yield self._metrics
        finally:
            recorder, self._metrics = self._metrics, None
            recorder.flush()

    def _build_metrics(self, platform: str, context: Any) -> MetricsRecorder:
        if self.metrics_factory is not None:
            return self.metrics_factory(platform, context)

        def token() -> Any:  # the function's IAM token, asked for at flush time only (cached per process)
            cloud = self.cloud(context)
            return cloud.transport.auth.token()  # type: ignore[attr-defined]

        return build_metrics(self.settings, platform=platform, context=context, token=token)

    def sinks(self, reply_to: ReplyTarget | None) -> list[ResultSink]:
        if self.sinks_factory is not None:
            return self.sinks_factory(reply_to)
        from adapters.sinks import build_sinks

        return build_sinks(self.settings, reply_to, queue=self.queue, clock=self.clock)
