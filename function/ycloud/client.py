"""`YandexCloud`: the facade the rest of the function uses (see docs/ARCHITECTURE.md, "The client")."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ycloud.auth import TokenProvider, select_provider
from ycloud.services import BackupPolicies, BackupResources, ComputeInstances, Endpoints, Operations
from ycloud.transport import RetryPolicy, Transport

if TYPE_CHECKING:
    import requests

    from settings import Settings

# Kept back from the invocation's remaining time, so the handler can still report after the last API call.
SAFETY_MARGIN_SECONDS = 2.0


class YandexCloud:
    def __init__(self, transport: Transport, endpoints: Endpoints | None = None) -> None:
        endpoints = endpoints or Endpoints()
        self.transport = transport
        self.endpoints = endpoints
        self.backup_policies = BackupPolicies(transport, endpoints.backup)
        self.backup_resources = BackupResources(transport, endpoints.backup)
        self.operations = Operations(transport, endpoints.operation)
        self.compute = ComputeInstances(transport, endpoints.compute)

    def __repr__(self) -> str:
        return f"YandexCloud(backup={self.endpoints.backup!r}, auth={self.transport.auth!r})"

    @property
    def calls(self) -> int:
        """API calls made by this client (one per request or page; token requests not included)."""
        return self.transport.calls

    @property
    def attempts(self) -> int:
        """HTTP attempts for those calls: calls plus retries (and the one re-try after a 401)."""
        return self.transport.attempts

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        context: Any = None,
        *,
        remaining_time: Callable[[], float | None] | None = None,
        safety_margin: float = SAFETY_MARGIN_SECONDS,
        session: requests.Session | None = None,
        auth: TokenProvider | None = None,
        retry: RetryPolicy | None = None,
    ) -> YandexCloud:
        """Build a client for one invocation. Makes no network call: tokens are fetched on first use.

        `remaining_time` defaults to the context's `get_remaining_time_in_millis()` less `safety_margin`;
        without either, retries are bounded by their count only.
        """
        endpoints = Endpoints.single(settings.yc_api_endpoint) if settings.yc_api_endpoint else Endpoints()
        if remaining_time is None:
            remaining_time = remaining_time_from(context, safety_margin)
        transport = Transport(
            connect_timeout=settings.yc_connect_timeout,
            read_timeout=settings.yc_read_timeout,
            retry=retry or RetryPolicy(max_retries=settings.yc_max_retries),
            remaining_time=remaining_time,
            session=session,
        )
        transport.auth = auth or select_provider(
            static_token=settings.yc_iam_token,
            context=context,
            service_account_key=settings.yc_service_account_key,
            metadata_addr=settings.yc_metadata_addr,
            iam_base=endpoints.iam,
            fetch=transport.fetch,
        )
        return cls(transport, endpoints)


def remaining_time_from(context: Any, safety_margin: float = SAFETY_MARGIN_SECONDS) -> Callable[[], float | None]:
    """Seconds left in the invocation, less a margin, from the platform's context (None: unbounded)."""
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(getter):
        return lambda: None

    def remaining() -> float | None:
        millis = getter()
        return None if millis is None else float(millis) / 1000.0 - safety_margin

    return remaining
