"""SQS's query protocol (a form-encoded request, an XML answer) for `SendMessageBatch`: what Yandex Message Queue's
API reference documents.

Amazon SQS and botocore moved to the JSON protocol (botocore 1.31.81). Yandex's current docs no longer cap the
client version and a user reports that YMQ accepts JSON, but its API reference still documents only the query
protocol, and earlier revisions told users to pin clients that predate JSON (../shared/reference/yandex-deploy.md
records the conflict). Where the docs disagree the function takes the documented path: adapters.sqs speaks the
query protocol to `message-queue.api.cloud.yandex.net` (SQS_PROTOCOL=auto) and JSON elsewhere; SQS_PROTOCOL=json
or query forces one. moto serves both, so the tests run both against the same server.

Hand-written like adapters.aws (the same signer, retries and limits). The answer is parsed with the standard
library's ElementTree, and only an answer of at most MAX_ANSWER_BYTES without a DOCTYPE is parsed (no entities
at all: SQS sends none, and expat's limits still allow a 100-fold expansion); every text read from it is cleaned
before it reaches an error.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from adapters.aws import _CODE, AwsError, AwsJsonClient, clean
from adapters.aws import Answer as _Answer
from adapters.sigv4 import Credentials

QUERY_VERSION = "2012-11-05"  # the SQS API version of the query protocol
ENTRY = "SendMessageBatchRequestEntry"


def send_message_batch(
    client: AwsJsonClient, queue_url: str, entries: Sequence[dict[str, Any]], *, endpoint: str
) -> dict[str, Any]:
    """SendMessageBatch over the query protocol, answered in the JSON protocol's shape (`Successful`, `Failed`)."""
    params: list[tuple[str, str]] = [
        ("Action", "SendMessageBatch"),
        ("Version", QUERY_VERSION),
        ("QueueUrl", queue_url),
    ]
    for n, entry in enumerate(entries, 1):
        params += [
            (f"{ENTRY}.{n}.Id", str(entry["Id"])),
            (f"{ENTRY}.{n}.MessageBody", str(entry["MessageBody"])),
            (f"{ENTRY}.{n}.DelaySeconds", str(entry.get("DelaySeconds", 0))),
        ]
    body = urlencode(params, quote_via=quote).encode("utf-8")  # spaces as %20, as botocore's query serializer
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    return client.request("SendMessageBatch", body, headers, _batch_answer, endpoint=endpoint)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # without the namespace (http://queue.amazonaws.com/doc/2012-11-05/)


def _text(element: ElementTree.Element, name: str) -> str:
    child = next((c for c in element if _local(c.tag) == name), None)
    return (child.text or "").strip() if child is not None else ""


MAX_ANSWER_BYTES = 64 * 1024  # a SendMessageBatch answer for 10 entries is ~2 KB


def _root(operation: str, answer: _Answer) -> ElementTree.Element | None:
    """The answer's XML, or None when it is not XML we read: too long, or with a DOCTYPE (entities amplify a body
    up to 100 times even under expat's limits; SQS never sends one)."""
    if len(answer.content) > MAX_ANSWER_BYTES or b"<!DOCTYPE" in answer.content or b"<!ENTITY" in answer.content:
        return None
    try:
        # The operator's own queue endpoint over https; no external entities, expansion limited by expat (above).
        return ElementTree.fromstring(answer.content) if answer.content.strip() else None  # noqa: S314
    except (ElementTree.ParseError, ValueError, RecursionError):
        return None


def _batch_answer(operation: str, answer: _Answer, credentials: Credentials) -> dict[str, Any]:
    root = _root(operation, answer)
    if not 200 <= answer.status < 300:
        raise _error(operation, answer, root, credentials)
    if root is None:
        raise AwsError(operation, "InvalidResponse", "the answer is not XML we read", answer.status)
    if any(_local(e.tag) == "Error" for e in root.iter()):  # an error answered with a 2xx: still an error
        raise _error(operation, answer, root, credentials)
    successful = [
        {"Id": _text(e, "Id"), "MessageId": _text(e, "MessageId")}
        for e in root.iter()
        if _local(e.tag) == "SendMessageBatchResultEntry"
    ]
    failed = [
        {"Id": _text(e, "Id"), "Code": _text(e, "Code"), "Message": _text(e, "Message")}
        for e in root.iter()
        if _local(e.tag) == "BatchResultErrorEntry"
    ]
    return {"Successful": successful, "Failed": failed}


def _error(operation: str, answer: _Answer, root: ElementTree.Element | None, credentials: Credentials) -> AwsError:
    """`<ErrorResponse><Error><Code>…</Code><Message>…</Message></Error></ErrorResponse>`, else `HTTP<status>`."""
    error = next((e for e in root.iter() if _local(e.tag) == "Error"), None) if root is not None else None
    code = _text(error, "Code") if error is not None else ""
    code = code if _CODE.fullmatch(code) else ""
    message = clean(_text(error, "Message"), credentials.secrets()) if error is not None else ""
    return AwsError(operation, code or f"HTTP{answer.status}", message, answer.status)
