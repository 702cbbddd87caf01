"""`make run`: the main job on one machine. Trigger a backup, follow it, print the result event.

By default it plays the whole platform: the Yandex Cloud emulator (a nominal 10-minute backup takes
about ten seconds), a local SQS-protocol server with the request, follow-up and result queues, the
trigger (a timer event unless `--event` names another file of events/), and the follow-up
invocations as their delays come due. `--scenario fail` makes the backup fail, to show a `failed`
result. With `--cloud real`, the emulator is not started and the function uses the credentials
and endpoints of the environment (YC_IAM_TOKEN or YC_SERVICE_ACCOUNT_KEY, FOLDER_ID, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_DIR = ROOT / "function"
DEFAULT_EVENT = ROOT / "events" / "yc-timer.json"


def _say(text: str) -> None:
    print(text, flush=True)


def _prepare_path() -> None:
    if str(FUNCTION_DIR) not in sys.path:
        sys.path.insert(0, str(FUNCTION_DIR))


def sign_http_event(event: dict[str, Any], secret: str) -> dict[str, Any]:
    """Sign an HTTP sample event's body the way a CI client would (X-Backup-Timestamp/-Signature)."""
    import base64

    from chatops.signing import sign_webhook

    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else str(body).encode()
    signed = dict(event)
    headers = dict(event.get("headers") or {})
    headers.update(sign_webhook(secret, raw, int(time.time())))
    signed["headers"] = headers
    if "multiValueHeaders" in signed and isinstance(signed["multiValueHeaders"], dict):
        signed["multiValueHeaders"] = {**signed["multiValueHeaders"], **{k: [v] for k, v in headers.items()}}
    return signed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make run", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--event", type=Path, default=DEFAULT_EVENT, help="trigger event file (default: events/yc-timer.json)"
    )
    parser.add_argument("--scenario", choices=["success", "fail"], default="success")
    parser.add_argument("--cloud", choices=["emulator", "real"], default="emulator")
    parser.add_argument("--backup-minutes", type=float, default=10.0, help="nominal backup duration on the emulator")
    parser.add_argument("--time-scale", type=float, default=60.0, help="emulator speed-up (60: a minute a second)")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up after this many real seconds")
    args = parser.parse_args(argv)

    _prepare_path()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    event_path = args.event if args.event.is_absolute() else (Path.cwd() / args.event)
    if not event_path.exists():
        _say(f"no such event file: {args.event}")
        return 2
    event = json.loads(event_path.read_text())
    platform_kind = "aws" if event_path.name.startswith("aws-") else "yandex"

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise

    from local.platform import LocalPlatform

    emulator = None
    if args.cloud == "emulator":
        from local.emulator import EmulatorConfig, start_emulator

        emulator = start_emulator(EmulatorConfig(port=0, time_scale=args.time_scale))
        from local.emulator.seed import DEMO_FOLDER_ID, DEMO_INSTANCE_ID

        emulator.state.set_backup_duration(DEMO_INSTANCE_ID, args.backup_minutes * 60)
        if args.scenario == "fail":
            emulator.state.set_failure(DEMO_INSTANCE_ID, at=0.6, message="backup failed: not enough space in the vault")
        os.environ["YC_API_ENDPOINT"] = emulator.url
        os.environ["YC_IAM_TOKEN"] = emulator.token
        os.environ.setdefault("FOLDER_ID", DEMO_FOLDER_ID)
        _say(f"emulator   {emulator.url}  (a {args.backup_minutes:g}-minute backup at {args.time_scale:g}x)")

    sqs_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    sqs_server.start()
    host, port = sqs_server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL_SQS"] = endpoint
    local = LocalPlatform(sqs_endpoint=endpoint, platform=platform_kind)
    for name in ("requests", "followups", "results"):
        local.create_queue(name)
    os.environ["REQUEST_QUEUE_URL"] = local.queues["requests"]
    os.environ["FOLLOWUP_QUEUE_URL"] = local.queues["followups"]
    os.environ["RESULT_QUEUE_URL"] = local.queues["results"]
    # Seconds, not minutes: the emulator's clock runs fast, so the follow-up may look early and often.
    os.environ.setdefault("FOLLOWUP_FIRST_DELAY_SECONDS", "1")
    os.environ.setdefault("FOLLOWUP_MIN_DELAY_SECONDS", "1")
    secret = os.environ.setdefault("WEBHOOK_SECRET", os.urandom(16).hex())
    os.environ.setdefault("FANOUT_SECRET", os.urandom(16).hex())  # signs fan-out messages (backups.handoff)
    _say(f"queues     {endpoint}  (requests, followups, results, each with a dead-letter queue)")

    import app

    if "httpMethod" in event or "requestContext" in event:
        event = sign_http_event(event, secret)

    try:
        _say(f"trigger    {event_path.name}")
        reply = app.trigger_handler(event, _context("trigger"))
        _say("reply      " + _describe_reply(reply))
        return _follow(local, app, args.timeout)
    finally:
        sqs_server.stop()
        if emulator is not None:
            emulator.stop()


def _context(function: str) -> Any:
    from local.platform import LocalContext

    return LocalContext(function)


def _describe_reply(reply: Any) -> str:
    if isinstance(reply, dict) and "started" in reply:
        parts = [f"started {len(reply['started'])}"]
        parts += [f"{key} {len(reply[key])}" for key in ("skipped", "failed", "retryable") if reply.get(key)]
        if reply.get("fannedOut"):
            parts.append(f"fanned out {reply['fannedOut']}")
        ops = ", ".join(f"{s['operationId']} on {s['computeInstanceId']}" for s in reply["started"][:5])
        return "; ".join(parts) + (f"  ({ops})" if ops else "")
    if isinstance(reply, dict) and "statusCode" in reply:
        try:
            body = json.loads(reply.get("body") or "{}")
        except ValueError:
            body = reply.get("body")
        return f"HTTP {reply['statusCode']}  " + (_describe_reply(body) if "started" in body else str(body)[:600])
    return json.dumps(reply, default=str)[:1000]


def _watching(handler: Any) -> Any:
    """The follow-up handler, printing what each ticket it is given is about."""

    def run(event: dict[str, Any], context: Any) -> Any:
        bodies = [r["body"] for r in event.get("Records", [])] or [
            m["details"]["message"]["body"] for m in event.get("messages", [])
        ]
        for body in bodies:
            try:
                ticket = json.loads(body)
                samples = ticket.get("progress") or []
                seen = f"last seen at {samples[-1]['percent']:.0f}%" if samples else "first check"
                _say(f"follow-up  operation {ticket['operationId']}  check #{ticket.get('attempt', 0) + 1}  ({seen})")
            except (ValueError, KeyError, TypeError):
                _say("follow-up  (a message that is not a ticket)")
        return handler(event, context)

    return run


def _follow(local: Any, app: Any, timeout: float) -> int:
    """Run fan-out and follow-up invocations as their messages come due; print progress and results."""
    deadline = time.monotonic() + timeout
    results: list[dict[str, Any]] = []
    followup = _watching(app.followup_handler)
    while time.monotonic() < deadline:
        ran = local.deliver("requests", app.trigger_handler, "trigger")
        ran = local.deliver("followups", followup, "followup") or ran
        for message in local.drain("results"):
            result = json.loads(message["Body"])
            results.append(result)
            _say("result     " + json.dumps(result, indent=2))
        if not ran and local.pending("requests") == 0 and local.pending("followups") == 0:
            if results:
                statuses = [r.get("data", {}).get("status") for r in results]
                _say(f"done       {len(results)} result event(s): {', '.join(map(str, statuses))}")
                return 0
            _say("done       no result event (see the reply above)")
            return 1
        time.sleep(0.5)
    _say("timed out waiting for the result event")
    return 1


if __name__ == "__main__":
    sys.exit(main())
