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
import secrets
import sys
import time
from dataclasses import dataclass
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

    from security.hmac_v1 import sign_webhook

    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else str(body).encode()
    signed = dict(event)
    headers = dict(event.get("headers") or {})
    headers.update(sign_webhook(secret, raw, int(time.time())))
    signed["headers"] = headers
    if "multiValueHeaders" in signed and isinstance(signed["multiValueHeaders"], dict):
        signed["multiValueHeaders"] = {**signed["multiValueHeaders"], **{k: [v] for k, v in headers.items()}}
    return signed


EXIT_CODES = """
Exit codes: 0 every result event succeeded, or a dry run (its plan is printed); 1 a result failed or timed out,
no result came (the reply says why), or --timeout passed first (default: three times the backup's real duration
on the emulator, at least 60 s; a day with --cloud real); 2 bad arguments or an event file that is not JSON.
"""
SCENARIOS = ("ok", "success", "fail", "slow")
FAILURE_MESSAGE = "backup failed: not enough space in the vault"
SLOW_FACTOR = 30.0  # `slow`: backups last 30 times longer (a 10-minute backup: 5 minutes at 60x)


@dataclass
class LocalSetup:
    """The platform of `make run` and `make serve`: emulator (unless the cloud is real), SQS server, queues."""

    local: Any
    sqs_server: Any
    emulator: Any
    secret: str

    def stop(self) -> None:
        self.sqs_server.stop()
        if self.emulator is not None:
            self.emulator.stop()


def start_local(
    *,
    scenario: str = "ok",
    cloud: str = "emulator",
    backup_minutes: float = 10.0,
    time_scale: float = 60.0,
    platform_kind: str = "yandex",
    say: Any = _say,
) -> LocalSetup:
    """Start the local platform and point this process's environment (what `Deps.from_env` reads) at it.

    `scenario`: ok (or success), fail (every backup fails at 60%), slow (every backup lasts SLOW_FACTOR times longer).
    """
    _prepare_path()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise

    from local.platform import LocalPlatform

    emulator = None
    if cloud == "emulator":
        from local.emulator import EmulatorConfig, start_emulator
        from local.emulator.seed import DEMO_FOLDER_ID, DEMO_INSTANCE_ID

        emulator = start_emulator(EmulatorConfig(port=0, time_scale=time_scale))
        seconds = backup_minutes * 60 * (SLOW_FACTOR if scenario == "slow" else 1.0)
        emulator.state.set_backup_duration(None, seconds)
        emulator.state.set_backup_duration(DEMO_INSTANCE_ID, seconds)
        if scenario == "fail":
            for instance_id in list(emulator.state.instances):
                emulator.state.set_failure(instance_id, at=0.6, message=FAILURE_MESSAGE)
        os.environ["YC_API_ENDPOINT"] = emulator.url
        os.environ["YC_IAM_TOKEN"] = emulator.token
        os.environ.setdefault("FOLDER_ID", DEMO_FOLDER_ID)
        # Seconds, not minutes: the emulator's clock runs fast, so the follow-up may look early and often (with a
        # real cloud the function's own delays apply).
        os.environ.setdefault("FOLLOWUP_FIRST_DELAY_SECONDS", "1")
        os.environ.setdefault("FOLLOWUP_MIN_DELAY_SECONDS", "1")
        say(f"emulator   {emulator.url}  (a {seconds / 60:g}-minute backup at {time_scale:g}x)")

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
    os.environ["REQUEST_DLQ_URL"] = local.dead_letter["requests"]
    os.environ["FOLLOWUP_DLQ_URL"] = local.dead_letter["followups"]
    secret = os.environ.get("WEBHOOK_SECRET") or secrets.token_hex(16)
    os.environ["WEBHOOK_SECRET"] = secret
    os.environ.setdefault("HANDOFF_SECRET", secrets.token_hex(16))  # signs fan-out messages (backups.handoff)
    say(f"queues     {endpoint}  (requests, followups, results, each with a dead-letter queue)")
    return LocalSetup(local=local, sqs_server=sqs_server, emulator=emulator, secret=secret)


def default_timeout(cloud: str, backup_minutes: float, time_scale: float) -> float:
    """How long `make run` waits: three times the backup's real duration on the emulator (at least 60 s); with a
    real cloud (or `make emulator`, which may run at any speed) a day, like FOLLOWUP_DEADLINE_SECONDS."""
    if cloud == "real":
        return 86400.0
    return max(60.0, 3 * backup_minutes * 60 / time_scale + 30)


def load_event(path: Path) -> dict[str, Any]:
    """The event file as a JSON object, or UsageError with a message that says what is wrong."""
    if not path.is_file():
        raise UsageError(f"no such event file: {path}")
    try:
        event = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text: an event file is JSON (see events/)") from None
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON ({exc}): an event file is one JSON object (see events/)") from None
    if not isinstance(event, dict):
        raise UsageError(f"{path} holds JSON but not an object: an event file is one JSON object (see events/)")
    return event


class UsageError(Exception):
    """Bad arguments or input files: printed as they are, exit code 2."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make run", description=__doc__ + EXIT_CODES, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--event", type=Path, default=DEFAULT_EVENT, help="trigger event file (default: events/yc-timer.json)"
    )
    parser.add_argument("--scenario", choices=SCENARIOS, default="ok")
    parser.add_argument("--cloud", choices=["emulator", "real"], default="emulator")
    parser.add_argument("--backup-minutes", type=float, default=10.0, help="nominal backup duration on the emulator")
    parser.add_argument("--time-scale", type=float, default=60.0, help="emulator speed-up (60: a minute a second)")
    parser.add_argument(
        "--timeout", type=float, default=None, help="give up after this many real seconds (default: see below)"
    )
    args = parser.parse_args(argv)

    event_path = args.event if args.event.is_absolute() else (Path.cwd() / args.event)
    try:
        event = load_event(event_path)
    except UsageError as exc:
        _say(str(exc))
        return 2
    platform_kind = "aws" if event_path.name.startswith("aws-") else "yandex"
    timeout = args.timeout or default_timeout(args.cloud, args.backup_minutes, args.time_scale)
    setup = start_local(
        scenario=args.scenario,
        cloud=args.cloud,
        backup_minutes=args.backup_minutes,
        time_scale=args.time_scale,
        platform_kind=platform_kind,
    )
    import app

    if "httpMethod" in event or "requestContext" in event:
        event = sign_http_event(event, setup.secret)

    try:
        _say(f"trigger    {event_path.name}")
        reply = app.trigger_handler(event, _context("trigger"))
        _say("reply      " + _describe_reply(reply))
        if is_dry_run(reply):
            _say("done       dry run: the plan above, nothing started")
            return 0
        return _follow(setup.local, app, timeout)
    finally:
        setup.stop()


def is_dry_run(reply: Any) -> bool:
    """A dry run's reply: the summary (direct calls) or the HTTP body carries `dryRun: true`."""
    if isinstance(reply, dict) and "statusCode" in reply:
        try:
            reply = json.loads(reply.get("body") or "{}")
        except ValueError:
            return False
    return isinstance(reply, dict) and reply.get("dryRun") is True


def _context(function: str) -> Any:
    from local.platform import LocalContext

    return LocalContext(function)


def _describe_reply(reply: Any) -> str:
    if isinstance(reply, dict) and reply.get("dryRun"):
        plan = [p for p in reply.get("plan") or [] if isinstance(p, dict)]
        lines = [f"dry run, {len(plan)} target(s) planned"]
        lines += [f"  would back up {json.dumps(p, sort_keys=True)}" for p in plan[:20]]
        lines += [f"  would fail {json.dumps(p, sort_keys=True)}" for p in reply.get("failed") or []][:20]
        return "\n".join(lines)
    if isinstance(reply, dict) and "started" in reply:
        parts = [f"started {len(reply['started'])}"]
        parts += [f"{key} {len(reply[key])}" for key in ("skipped", "failed", "retryable", "queued") if reply.get(key)]
        if reply.get("fannedOut"):
            parts.append(f"fanned out {reply['fannedOut']}")
        ops = ", ".join(f"{s['operationId']} on {s['computeInstanceId']}" for s in reply["started"][:5])
        return "; ".join(parts) + (f"  ({ops})" if ops else "")
    if isinstance(reply, dict) and "statusCode" in reply:
        try:
            body = json.loads(reply.get("body") or "{}")
        except ValueError:
            body = reply.get("body")
        described = _describe_reply(body) if "started" in body or "dryRun" in body else str(body)[:600]
        return f"HTTP {reply['statusCode']}  " + described
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


def pump(local: Any, trigger: Any, followup: Any) -> tuple[bool, list[dict[str, Any]]]:
    """One round of the platform: a batch of fan-out requests and of due follow-up tickets to their handlers,
    and the result events found on the result queue. Returns (whether anything ran, the results)."""
    ran = local.deliver("requests", trigger, "trigger") is not None
    ran = local.deliver("followups", followup, "followup") is not None or ran
    results = [json.loads(message["Body"]) for message in local.drain("results")]
    return ran, results


def _follow(local: Any, app: Any, timeout: float) -> int:
    """Run fan-out and follow-up invocations as their messages come due; print progress and results.

    Exit code: 0 when every result event succeeded, 1 when one failed or timed out, when there was none (the reply
    above says why), or when `timeout` passed first."""
    deadline = time.monotonic() + timeout
    results: list[dict[str, Any]] = []
    followup = _watching(app.followup_handler)
    while time.monotonic() < deadline:
        ran, new = pump(local, app.trigger_handler, followup)
        for result in new:
            results.append(result)
            _say("result     " + json.dumps(result, indent=2))
        if not ran and local.pending("requests") == 0 and local.pending("followups") == 0:
            if not results:
                _say("done       no result event (see the reply above)")
                return 1
            statuses = [str(r.get("data", {}).get("status")) for r in results]
            _say(f"done       {len(results)} result event(s): {', '.join(statuses)}")
            return 0 if all(status == "succeeded" for status in statuses) else 1
        time.sleep(0.5)
    _say(f"timed out: no end after {timeout:g} s (raise it with --timeout, or TIMEOUT= with make run)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
