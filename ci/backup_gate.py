#!/usr/bin/env python3
"""Backup gate for CI: start a backup through the signed HTTP front, wait for it, exit with its result.

    BACKUP_GATE_SECRET=... python3 ci/backup_gate.py --url https://<front> --instance-name prod-db-1 --reason "release"

Runs on Python 3.8+ with its standard library only, so any CI runner can use it as it is (nothing to install);
hence urllib and argparse rather than requests and click. Exit codes:

  0  every started backup succeeded (or --dry-run printed the plan, or every target opted out)
  1  a backup failed, or a target could not start
  2  the outcome is not known: --timeout passed first (the backups may still be running: their ids are printed),
     or the request fanned out over the queue (more targets than FANOUT_THRESHOLD: no ids to follow), or
     targets are queued[] for a retry by the function itself (their results come as result events)
  3  refused: the front answered 4xx (its message says what to fix), or the gate's own options are wrong
  4  the front was unreachable or kept failing (connection errors, 5xx) after bounded retries

The secret comes only from BACKUP_GATE_SECRET and is never printed. Requests are signed like every signed call to
the front (docs/WEBHOOK.md): `X-Backup-Timestamp` and `X-Backup-Signature: v1=<hex HMAC-SHA256(secret,
"<timestamp>.<message>")>`, where the message is the raw body of `POST /backup` and `GET /backup/<operationId>` for
the status route. Every request carries a correlation id (the CI run's identity by default), so sending it again —
a retry after a lost reply, or the same job run again — starts nothing new and follows the same operations.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

OK, FAILED, UNKNOWN, REFUSED, UNREACHABLE = 0, 1, 2, 3, 4
SECRET_ENV = "BACKUP_GATE_SECRET"
URL_ENV = "BACKUP_GATE_URL"
MAX_REPLY_BYTES = 1 << 20
ID_RE = re.compile(r"^[a-z0-9]{1,50}$")
LABEL_RE = re.compile(r"^([a-z][-_./\\@0-9a-z]{0,62})=([-_./\\@0-9a-z]{0,63})$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# (CI, variables whose values together identify one run of one job), first match wins.
CI_IDENTITIES = (
    ("github", ("GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT")),
    ("gitlab", ("CI_PROJECT_PATH", "CI_PIPELINE_ID", "CI_JOB_ID")),
    ("bitbucket", ("BITBUCKET_REPO_FULL_NAME", "BITBUCKET_BUILD_NUMBER", "BITBUCKET_STEP_UUID")),
    ("azure", ("BUILD_REPOSITORY_NAME", "BUILD_BUILDID", "SYSTEM_JOBATTEMPT")),
    ("circleci", ("CIRCLE_PROJECT_REPONAME", "CIRCLE_WORKFLOW_ID", "CIRCLE_BUILD_NUM")),
    ("buildkite", ("BUILDKITE_PIPELINE_SLUG", "BUILDKITE_BUILD_ID", "BUILDKITE_JOB_ID")),
    ("jenkins", ("BUILD_TAG",)),
)


class GateError(Exception):
    """Ends the gate with `code`; `message` is printed (after redaction)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse echoes unknown arguments; one of them could be a secret pasted where it does not belong.
        if "unrecognized arguments" in message:
            names = [a.split("=", 1)[0] for a in message.split()[2:] if a.startswith("-")]
            message = "unrecognized options: " + " ".join(names)
        raise GateError(REFUSED, f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="backup_gate.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--url", help=f"the HTTP front's base URL (default: ${URL_ENV})")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--instance-id", help="instance id, or several separated by commas")
    sel.add_argument("--instance-name", help="the instance of this name (in --folder-id or the function's FOLDER_ID)")
    sel.add_argument("--labels", help="every instance carrying all these labels: k=v,k2=v2")
    p.add_argument("--folder-id", help="the folder the name or labels are looked up in")
    pol = p.add_mutually_exclusive_group()
    pol.add_argument("--policy-id", help="the policy to run (default: the one applied to each instance)")
    pol.add_argument("--policy-name", help="the policy to run, by name")
    p.add_argument("--reason", help="carried into the result events")
    p.add_argument("--correlation-id", help="identifies this request (default: the CI run's identity)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, start nothing, exit 0")
    p.add_argument("--json", action="store_true", help="print the outcome as one JSON object on stdout")
    p.add_argument("--timeout", type=float, default=3600.0, help="stop waiting after this many seconds (3600)")
    p.add_argument("--poll-initial", type=float, default=10.0, help="first wait between status checks (10 s)")
    p.add_argument("--poll-max", type=float, default=120.0, help="the wait grows up to this (120 s)")
    p.add_argument("--retries", type=int, default=5, help="retries of connection errors and 5xx per request (5)")
    p.add_argument("--request-timeout", type=float, default=30.0, help="seconds per HTTP request (30)")
    return p


# --- pure parts: identity, request body, signing, schedule --------------------------------------------------


def ci_correlation_id(env: dict) -> str | None:
    """The CI run's identity, the same for every retry of the gate within one run of one job.

    GitHub's GITHUB_RUN_ATTEMPT and GitLab's CI_JOB_ID change when a job is re-run by hand: a re-run after a
    failed backup takes a new one, while the gate's own retries and restarts follow the same operations.
    """
    for name, keys in CI_IDENTITIES:
        values = [env.get(k, "").strip() for k in keys]
        if values[-1]:  # the attempt / job id must be set; a missing context value (repository) is left empty
            return (name + ":" + "/".join(values))[-128:]
    return None


def parse_labels(text: str) -> dict:
    labels = {}
    for part in (p.strip() for p in text.split(",")):
        match = LABEL_RE.match(part)
        if not match:
            raise GateError(REFUSED, f"--labels: {clean(part)!r} is not k=v (lower-case Compute label syntax)")
        labels[match.group(1)] = match.group(2)
    return labels


def build_body(args: argparse.Namespace, correlation_id: str) -> dict:
    body: dict = {}
    if args.instance_id:
        ids = [i.strip() for i in args.instance_id.split(",") if i.strip()]
        bad = [i for i in ids if not ID_RE.match(i)]
        if bad or not ids:
            raise GateError(REFUSED, "--instance-id takes ids of 1-50 lower-case letters and digits")
        body.update({"computeInstanceId": ids[0]} if len(ids) == 1 else {"computeInstanceIds": ids})
    elif args.instance_name:
        body["instanceName"] = args.instance_name
    elif args.labels:
        body["instanceLabels"] = parse_labels(args.labels)
    for flag, key in (
        ("folder_id", "folderId"),
        ("policy_id", "policyId"),
        ("policy_name", "policyName"),
        ("reason", "reason"),
    ):
        if getattr(args, flag):
            body[key] = getattr(args, flag)
    body["correlationId"] = correlation_id
    if args.dry_run:
        body["dryRun"] = True
    return body


def sign(secret: str, timestamp: int, message: bytes) -> dict:
    digest = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + message, hashlib.sha256)
    return {"X-Backup-Timestamp": str(timestamp), "X-Backup-Signature": "v1=" + digest.hexdigest()}


def poll_delay(checks: int, initial: float, maximum: float, retry_after: float | None = None) -> float:
    """The wait before status check number `checks + 1`: grows by half each time up to `maximum`; a
    Retry-After from the front replaces it (never under 1 s, never over 10 minutes)."""
    if retry_after is not None:
        return min(max(retry_after, 1.0), 600.0)
    return min(maximum, initial * 1.5**checks)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is read as absent: the front sends seconds)."""
    if value is None or not re.match(r"^[0-9]{1,6}$", value.strip()):
        return None
    return float(value.strip())


def clean(text: object, limit: int = 500) -> str:
    """Server and user text made safe for a CI log: no control characters (terminal escapes), bounded."""
    return CONTROL_RE.sub(" ", str(text))[:limit]


# --- the gate ----------------------------------------------------------------------------------------------


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is answered as the 3xx it is: the URL is wrong


class Gate:
    def __init__(
        self,
        args: argparse.Namespace,
        url: str,
        secret: str,
        *,
        out=None,
        err=None,
        sleep=time.sleep,
        clock=time.monotonic,
        wall=time.time,
        jitter=random.random,
    ) -> None:
        self.args, self.base, self.secret = args, url.rstrip("/"), secret
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.sleep, self.clock, self.wall, self.jitter = sleep, clock, wall, jitter
        self.opener = urllib.request.build_opener(NoRedirect)
        self.deadline = clock() + args.timeout
        self.outcome: dict = {}  # what is known so far, reported even when the gate ends early

    def say(self, text: str) -> None:
        stream = self.err if self.args.json else self.out
        stream.write(redact(text, self.secret) + "\n")
        stream.flush()

    # One request, re-signed and retried on connection errors, 429 and 5xx; 4xx ends the gate.
    def call(self, method: str, path: str, body: bytes | None) -> tuple:
        attempts = max(0, self.args.retries) + 1
        last = ""
        for attempt in range(attempts):
            message = body if body is not None else f"{method} {path}".encode()
            headers = sign(self.secret, int(self.wall()), message)
            headers.update({"Accept": "application/json", "User-Agent": "backup-gate/1"})
            if body is not None:
                headers["Content-Type"] = "application/json"
            # check_url allowed http(s) only
            request = urllib.request.Request(self.base + path, data=body, headers=headers, method=method)  # noqa: S310
            wait = None
            try:
                with self.opener.open(request, timeout=self.args.request_timeout) as reply:
                    return reply.status, reply.headers, read_json(reply.read(MAX_REPLY_BYTES + 1))
            except urllib.error.HTTPError as exc:
                payload = read_json(exc.read(MAX_REPLY_BYTES + 1))
                if exc.code < 500 and exc.code != 429:
                    raise GateError(
                        REFUSED, f"{method} {path} refused: HTTP {exc.code} {error_text(payload)}"
                    ) from None
                last, wait = (
                    f"HTTP {exc.code} {error_text(payload)}",
                    retry_after_seconds(exc.headers.get("Retry-After")),
                )
            except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, reset, timeout, bad reply
                last = clean(getattr(exc, "reason", None) or exc, 200)
            if attempt + 1 < attempts:
                delay = wait if wait is not None else min(30.0, 2.0**attempt) * (0.5 + self.jitter() / 2)
                self.say(f"front: {last}; retrying in {delay:.0f} s ({attempt + 1}/{attempts - 1})")
                self.sleep(min(delay, 600.0))
        raise GateError(UNREACHABLE, f"the front at {self.base} failed {attempts} time(s): {last}")

    def start(self, body: dict) -> dict:
        """POST /backup, sent again while some targets hit a transient cloud error: with the same correlation id
        the ones already started are not started twice (the reply names the same operations)."""
        raw = json.dumps(body, separators=(",", ":")).encode()
        for attempt in range(max(0, self.args.retries) + 1):
            _, _, reply = self.call("POST", "/backup", raw)
            if not isinstance(reply, dict):
                raise GateError(UNREACHABLE, "the front's reply to POST /backup is not a JSON object")
            retryable = [t for t in reply.get("retryable") or [] if isinstance(t, dict)]
            if not retryable or attempt >= self.args.retries:
                return reply
            delay = min(30.0, 2.0**attempt)
            self.say(f"{len(retryable)} target(s) hit a transient error: asking again in {delay:.0f} s")
            self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def run(self, body: dict) -> dict:
        outcome = self.outcome = {"correlationId": body["correlationId"], "operations": [], "failed": [], "skipped": []}
        reply = self.start(body)
        for key in ("failed", "skipped", "plan", "retryable", "queued"):
            if isinstance(reply.get(key), list):
                outcome[key] = [t for t in reply[key] if isinstance(t, dict)]
        for target in outcome["skipped"]:
            self.say(f"skipped    {describe(target)}: {clean(target.get('reason', ''))}")
        verb = "would fail " if body.get("dryRun") else "not started"
        for target in outcome["failed"] + outcome.get("retryable", []):
            self.say(f"{verb} {describe(target)}: {clean(target.get('code'))} {clean(target.get('message', ''))}")
        if body.get("dryRun"):
            for target in outcome.get("plan", []):
                self.say("would back up " + describe(target) + plan_notes(target))
            self.say(f"dry run: {len(outcome.get('plan', []))} target(s) planned, nothing started")
            return finish(outcome, OK, "planned")
        ops = []
        for s in reply.get("started") or []:
            if isinstance(s, dict) and isinstance(s.get("operationId"), str) and ID_RE.match(s["operationId"]):
                op = {k: s.get(k) for k in ("operationId", "computeInstanceId", "instanceName", "policyId")}
                ops.append(dict(op, status="running", progressPercentage=None))
                self.say(f"started    {s['operationId']} on {describe(s)}")
        outcome["operations"] = ops
        fanned = reply["fannedOut"] if isinstance(reply.get("fannedOut"), int) else 0
        if ops:
            self.follow(ops)
        return self.verdict(outcome, fanned)

    def follow(self, ops: list) -> None:
        checks = dict.fromkeys((o["operationId"] for o in ops), 0)
        due = dict.fromkeys(checks, self.clock() + poll_delay(0, self.args.poll_initial, self.args.poll_max))
        while True:
            waiting = [o for o in ops if o["status"] == "running"]
            if not waiting:
                return
            op = min(waiting, key=lambda o: due[o["operationId"]])
            now = self.clock()
            if now >= self.deadline:
                return
            self.sleep(max(0.0, min(due[op["operationId"]], self.deadline) - now))
            _, headers, status = self.call("GET", "/backup/" + urllib.parse.quote(op["operationId"]), None)
            self.update(op, status)
            oid = op["operationId"]
            checks[oid] += 1
            hint = retry_after_seconds(headers.get("Retry-After"))
            due[oid] = self.clock() + poll_delay(checks[oid], self.args.poll_initial, self.args.poll_max, hint)

    def update(self, op: dict, status: object) -> None:
        if not isinstance(status, dict) or status.get("status") not in ("running", "succeeded", "failed"):
            raise GateError(UNREACHABLE, f"the status of {op['operationId']} is not readable")
        progress = status.get("progressPercentage")
        progress = float(progress) if isinstance(progress, (int, float)) and not isinstance(progress, bool) else None
        if (status["status"], progress) == (op["status"], op["progressPercentage"]):
            return
        op["status"], op["progressPercentage"] = status["status"], progress
        line = f"{op['status']:<10} {op['operationId']} on {describe(op)}"
        if op["status"] == "running" and progress is not None:
            line += f"  {progress:.0f}%"
        if op["status"] == "failed":
            error = status["error"] if isinstance(status.get("error"), dict) else {}
            op["error"] = {k: clean(error.get(k)) for k in ("code", "message") if error.get(k) is not None}
            line += f": {op['error'].get('code', '')} {op['error'].get('message', '')}"
        self.say(line)

    def verdict(self, outcome: dict, fanned: int) -> dict:
        ops = outcome["operations"]
        running = [o["operationId"] for o in ops if o["status"] == "running"]
        if any(o["status"] == "failed" for o in ops) or outcome["failed"]:
            code, state, text = FAILED, "failed", "a backup failed or could not start: do not deploy"
        elif outcome.get("retryable"):
            code, state = UNREACHABLE, "unreachable"
            text = f"{len(outcome['retryable'])} target(s) could not start: the cloud kept failing; run the gate again"
        elif running:
            code, state = UNKNOWN, "timed_out"
            text = f"--timeout {self.args.timeout:g} s passed first; still running (they go on): " + ", ".join(running)
        elif outcome.get("queued"):
            code, state = UNKNOWN, "queued"
            text = (
                f"{len(outcome['queued'])} target(s) hit a transient error and are retried by the function itself "
                "(queued[]): not followed here, their results come as result events: "
                + ", ".join(describe(t) for t in outcome["queued"])
            )
        elif fanned:
            code, state = UNKNOWN, "fanned_out"
            text = (
                f"{fanned} target(s) fanned out through the request queue (over FANOUT_THRESHOLD): no operation "
                "ids to follow; narrow the selector or split the gate"
            )
        elif ops:
            code, state, text = OK, "succeeded", f"{len(ops)} backup(s) succeeded"
        else:
            code, state, text = OK, "nothing_to_do", "nothing to back up: every target opted out"
        self.say(text)
        return finish(outcome, code, state, text)


def finish(outcome: dict, code: int, state: str, message: str = "") -> dict:
    outcome.update({"outcome": state, "exitCode": code})
    if message:
        outcome["message"] = message
    return outcome


def read_json(data: bytes) -> object:
    if len(data) > MAX_REPLY_BYTES:
        return None
    try:
        return json.loads(data.decode("utf-8")) if data else None
    except ValueError:
        return None


def error_text(payload: object) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        text = f"{clean(error.get('code', ''), 60)}: {clean(error.get('message', ''))}"
        failed = payload.get("failed") if isinstance(payload, dict) else None
        for target in (failed if isinstance(failed, list) else [])[:20]:
            if isinstance(target, dict):
                text += f"\n  {describe(target)}: {clean(target.get('code'))} {clean(target.get('message', ''))}"
        return text
    return "(no error message in the reply)"


def describe(target: dict) -> str:
    name = target.get("instanceName")
    what = target.get("computeInstanceId") or target.get("target") or "?"
    text = clean(what, 100) + (f" ({clean(name, 70)})" if name else "")
    return text + (f" with policy {clean(target['policyId'], 60)}" if target.get("policyId") else "")


def plan_notes(target: dict) -> str:
    known = {"computeInstanceId", "instanceName", "policyId", "folderId", "idempotencyKey", "policyName"}
    extra = {k: v for k, v in target.items() if k not in known and v not in (None, False, "", [], {})}
    return ("  " + clean(json.dumps(extra, sort_keys=True), 300)) if extra else ""


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GateError(REFUSED, f"the front URL must be https://host[/stage] (got {clean(url, 200)!r})")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise GateError(REFUSED, "the front URL must use https (plain http is accepted for 127.0.0.1 only)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise GateError(REFUSED, "the front URL must not carry a query, a fragment or user information")
    return url


def main(argv: list | None = None, env: dict | None = None, **io) -> int:
    env = dict(os.environ) if env is None else env
    secret = env.get(SECRET_ENV, "")
    out = io.get("out") or sys.stdout
    json_out, gate = False, None
    try:
        args = build_parser().parse_args(argv)
        json_out = args.json
        url = check_url(args.url or env.get(URL_ENV, ""))
        if not secret:
            raise GateError(REFUSED, f"set {SECRET_ENV} (the front's WEBHOOK_SECRET); it is never taken as an option")
        if args.timeout <= 0 or args.poll_initial <= 0 or args.poll_max < args.poll_initial:
            raise GateError(REFUSED, "--timeout and --poll-initial must be > 0, --poll-max >= --poll-initial")
        gate = Gate(args, url, secret, **io)
        correlation = args.correlation_id or ci_correlation_id(env)
        if correlation is None:
            correlation = "local:" + uuid.uuid4().hex
            gate.say(f"no CI run identity found: correlation id {correlation} (pass it again to follow the same)")
        if len(correlation) > 128 or CONTROL_RE.search(correlation):
            raise GateError(REFUSED, "--correlation-id: at most 128 characters, no control characters")
        outcome = gate.run(build_body(args, correlation))
    except GateError as exc:
        outcome, message = (gate.outcome if gate else {}), str(exc)
        running = [o["operationId"] for o in outcome.get("operations", []) if o["status"] == "running"]
        if running:
            message += "; the backups go on: " + ", ".join(running)
        state = {REFUSED: "refused", UNREACHABLE: "unreachable"}.get(exc.code, "error")
        outcome = finish(outcome, exc.code, state, message)
        stream = (io.get("err") or sys.stderr) if json_out else out
        stream.write(redact(message, secret) + "\n")
    except KeyboardInterrupt:
        outcome = finish({}, UNKNOWN, "interrupted", "interrupted: the backups (if started) go on")
        out.write(outcome["message"] + "\n")
    except Exception as exc:  # never a traceback: it could quote a request carrying a signature
        outcome = finish({}, UNREACHABLE, "error", f"gate error: {type(exc).__name__}: {clean(exc, 300)}")
        out.write(redact(outcome["message"], secret) + "\n")
    if json_out:
        out.write(redact(json.dumps(outcome, sort_keys=True), secret) + "\n")
    out.flush()
    return int(outcome["exitCode"])


if __name__ == "__main__":
    sys.exit(main())
