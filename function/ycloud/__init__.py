"""The Yandex Cloud REST client: `from ycloud import YandexCloud, CloudError`.

Names are resolved lazily, so `import ycloud.models` or `ycloud.errors` does not pull in requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ycloud.client import YandexCloud
    from ycloud.errors import CloudError
    from ycloud.services import Endpoints
    from ycloud.transport import RetryPolicy, Transport

__all__ = ["CloudError", "Endpoints", "RetryPolicy", "Transport", "YandexCloud"]

_WHERE = {
    "YandexCloud": "ycloud.client",
    "CloudError": "ycloud.errors",
    "Endpoints": "ycloud.services",
    "RetryPolicy": "ycloud.transport",
    "Transport": "ycloud.transport",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'ycloud' has no attribute {name!r}")
