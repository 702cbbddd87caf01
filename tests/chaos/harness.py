"""The chaos round: many backups through the local platform while the cloud, the queues and the invocations misbehave.

One round (`run_round`):

1. The emulator gets a folder of instances (`seed.create_large_folder`), labelled into groups; a few are opted out
   by label, a few have their backup agent offline (Execute is refused: a `failed` result, no backup), a few have
   backups that fail half-way (a `failed` result after one backup). Backups last `backup_seconds` real seconds.
2. The request queue gets the triggers: one label-selector request per group (groups over FANOUT_THRESHOLD fan
   out through the request queue, the others execute inline), one `computeInstanceIds` request, and one
   single-instance message per remaining instance. Poison goes in on purpose: unreadable bodies on the request
   queue (POISON_REQUESTS), and a few seconds later, among live tickets, malformed tickets on the follow-up queue
   (POISON_TICKETS).
3. Faults: the emulator answers `fault_rate` of the API calls with 429, 503, a dropped connection or a dropped
   response (processed, answer lost), from its seeded fault RNG. The platform (`local.platform.LocalPlatform`)
   delivers `duplicate_rate` of the messages twice in their batch (its `duplicate` hook) and kills invocations:
   - at start (its `kill` hook: a failed invocation before the handler ran),
   - mid-way (`Killed` at the N-th API attempt of the invocation, see `DyingContext`: what the handler did
     before stays done, the rest is never done; this is the kill that matters, e.g. backups started but no
     tickets sent),
   - after the work, before the batch is settled (the handler returned; the platform still sees a failure, so
     the whole batch comes back after the visibility timeout: every side effect happens twice),
   - at the function timeout (`function_timeout`: the handler sees its time left shrink, and dies if it runs on).
   Any failed invocation leaves its messages to come back after the visibility timeout (AWS: only those listed
   in batchItemFailures when the handler answered; Yandex: the whole batch, the handler raising).
   A message is killed at most `max_kills_per_message` times by the mid-way/after modes, so that the kills
   alone do not push a healthy message over maxReceiveCount (that would be the redrive policy working as
   designed, not a bug).
4. `workers` threads play the two queue triggers (`LocalPlatform.deliver`) until both queues are empty and no
   handler runs, or the time budget is spent. The run is concurrent, so the seed fixes the scenario and the
   decisions' random streams, not the interleaving: two runs with one seed differ in detail.

`check(scenario, observed)` then lists every violation of the contract (an empty list is a pass):
- every target ends in exactly one distinct result event: dedup by event id; the copies of an id agree (status,
  instance, operation, trigger, error code); one instance per id; the set of instances with results is the set of
  targets; each with the expected status and trigger;
- the emulator's execute log shows exactly one started backup per (trigger, policy, instance) (none for refused
  targets, none for opted-out or unknown instances): a redelivered or duplicated trigger started nothing again;
- nothing stays in flight: the request and follow-up queues are empty (visible + in flight + delayed = 0);
- the poison, per the handlers' documented behaviour: an unreadable request is consumed with one `failed` result
  whose target is the request as asked (handlers/trigger.py: "a request that cannot even be read ends in one
  too"; `_handle_queue` treats it as permanent), so the request dead-letter queue stays empty; a malformed
  ticket is reported failed every time (handlers/followup.py), so the redrive policy moves it to the follow-up
  dead-letter queue after maxReceiveCount deliveries, with no result; a ticket that says it is one but does not
  hold up (REFUSED_TICKETS: an operation id that is not an id) ends in one failed result named after the message
  that carried it (backups.followup.refuse_ticket). The dead-letter queues hold exactly the other malformed
  tickets, each once (on Yandex at least once: the function copies them there itself, and a killed invocation
  may repeat the copy), and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from local.emulator import EmulatorState, FaultRule
from local.emulator.seed import create_large_folder, large_folder_policy_id
from local.platform import LocalPlatform

CHAOS_FOLDER_ID = "b1gchaosfolder000001"
DEFAULT_SEED = "1729"
Handler = Callable[[dict[str, Any], Any], Any]


def chaos_seed() -> str:
    """CHAOS_SEED from the environment (any text), else the fixed default."""
    return os.environ.get("CHAOS_SEED", "").strip() or DEFAULT_SEED


# --- configuration -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChaosConfig:
    platform: str  # "aws" (batchItemFailures) or "yandex" (a failed batch comes back whole)
    seed: str = DEFAULT_SEED
    # the load: instances per label-selector request, one computeInstanceIds request, single-instance messages
    label_groups: tuple[int, ...] = (70, 50, 25)
    id_list: int = 12
    singles: int = 53
    opt_outs_per_group: int = 2  # in each label group, opted out by label: never backed up, no result
    offline: int = 4  # agent offline: Execute refused, a failed result, no backup
    failing: int = 4  # the backup fails half-way: one backup, a failed result
    fanout_threshold: int = 25
    with_poison: bool = True  # send the poison requests and tickets
    # the faults
    fault_rate: float = 0.20  # of the emulator's API answers: 429, 503, dropped connection, dropped response
    duplicate_rate: float = 0.10  # of the delivered messages, delivered twice
    kill_at_start_rate: float = 0.02  # of invocations (LocalPlatform.kill: before the handler runs)
    kill_midway_rate: float = 0.08  # of invocations: Killed at the N-th API attempt
    kill_after_rate: float = 0.05  # of invocations: the handler ran, the batch is not settled
    max_kills_per_message: int = 2
    # the platform
    # Batch sizes as deployed: requests 1 on both (template.yaml "keep a batch to one request", deploy-yc.sh
    # --batch-size 1); follow-ups 10 on AWS (template.yaml, with ReportBatchItemFailures) and 1 on Yandex
    # (deploy-yc.sh FOLLOWUP_BATCH_SIZE: "a Yandex batch fails as a whole: keep tickets apart"). A duplicated
    # message makes a batch of two copies.
    request_batch: int = 1
    followup_batch: int | None = None  # None: the deployed default above
    poison_ticket_delay: float = 3.0  # seconds into the round: among live tickets, in the batches of real ones
    # A function timeout, as the platforms enforce one: the handler sees its time left shrink (the client stops
    # calling the API 2 s before the end) and is killed if it runs past it. Request-queue visibility >= that
    # timeout, so a running invocation's messages never reappear (the deployment's "visibility >= 6 x timeout").
    # The follow-up queue's is shorter, so the poison reaches its dead-letter queue sooner (maxReceiveCount x
    # visibility): a follow-up invocation slower than that (rare: one Operation.Get per ticket) may see its ticket
    # delivered again meanwhile, which at-least-once delivery allows anyway.
    function_timeout: float = 6.0
    request_visibility: int = 6
    followup_visibility: int = 3
    max_receive_count: int = 5  # deploy/yandex/deploy-yc.sh MAX_RECEIVE_COUNT
    workers: int = 8
    # time
    time_scale: float = 100.0
    backup_seconds: tuple[float, float] = (1.0, 3.0)  # real seconds per backup, uniform
    budget_seconds: float = 75.0

    @property
    def followup_batch_size(self) -> int:
        if self.followup_batch is not None:
            return self.followup_batch
        # deploy/yandex/deploy-yc.sh: FOLLOWUP_BATCH_SIZE=1 ("a Yandex batch fails as a whole: keep tickets
        # apart"); template.yaml: BatchSize 10 with ReportBatchItemFailures.
        return 10 if self.platform == "aws" else 1


POISON_REQUESTS = {
    "not-json": "{this is not json",
    "json-array": "[1, 2, 3]",
    "bad-fanout": '{"kind": "fanout", "version": 1}',
    "bad-instance-id": '{"computeInstanceId": "Not-An-Id!"}',
    "empty": "",
    # over MAX_BODY_BYTES (64 KiB), under the queue's 256 KiB
    "oversized": '{"computeInstanceId": "' + "x" * 70_000 + '"}',
}
POISON_TICKETS = {
    "text": "definitely not a follow-up ticket",
    "wrong-kind": '{"kind": "report", "operationId": "cdg00000000000000001"}',
    "bad-fields": '{"kind": "followup", "operationId": 42}',
    "future-version": '{"kind": "followup", "version": 99}',
    "array": "[]",
}
REFUSED_TICKETS = frozenset({"bad-fields"})  # consumed with one failed result (INVALID_TICKET), never dead-lettered


# --- the scenario --------------------------------------------------------------------------------------------


@dataclass
class Target:
    instance_id: str
    via: str  # "g0", "g1", ... (label selector), "ids" (computeInstanceIds), "single"
    policy_id: str
    expect: str = "succeeded"  # the result's data.status
    error_code: str | None = None  # the result's data.error.code
    starts: int = 1  # backups the execute log must show (0: Execute is refused)
    trigger_id: str = ""  # the SQS message id of the request that asked for it (set when sent)


@dataclass
class Scenario:
    config: ChaosConfig
    policy_id: str
    targets: dict[str, Target] = field(default_factory=dict)
    opted_out: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (label, body, instance ids)
    poison_requests: dict[str, str] = field(default_factory=dict)  # message id -> poison name
    poison_tickets: dict[str, str] = field(default_factory=dict)  # message id -> poison name


def build_scenario(state: EmulatorState, cfg: ChaosConfig, rng: random.Random) -> Scenario:
    """Instances in the emulator, and the requests that will ask for them (not sent yet)."""
    groups = list(cfg.label_groups)
    total = sum(groups) + cfg.opt_outs_per_group * len(groups) + cfg.id_list + cfg.singles
    state.set_settings(time_scale=cfg.time_scale)
    ids = create_large_folder(state, CHAOS_FOLDER_ID, total, labels={}, id_prefix="fhmchaos")
    policy = large_folder_policy_id(CHAOS_FOLDER_ID)
    rng.shuffle(ids)
    scenario = Scenario(config=cfg, policy_id=policy)
    pool = iter(ids)

    for index, size in enumerate(groups):
        label = f"g{index}"
        members = [next(pool) for _ in range(size)]
        for iid in members:
            state.update_instance(iid, labels={"chaos": label, "env": "prod"})
            scenario.targets[iid] = Target(iid, label, policy)
        for _ in range(cfg.opt_outs_per_group):
            iid = next(pool)
            state.update_instance(iid, labels={"chaos": label, "env": "prod", "backup-opt-out": "true"})
            scenario.opted_out.add(iid)
        body: dict[str, Any] = {"instanceLabels": {"chaos": label}, "reason": f"chaos {label}"}
        if index % 2:
            body["policyId"] = policy  # the other groups let the resolver find the applied policy
        scenario.requests.append((label, json.dumps(body), members))

    if cfg.id_list:
        members = [next(pool) for _ in range(cfg.id_list)]
        for iid in members:
            state.update_instance(iid, labels={"chaos": "ids"})
            scenario.targets[iid] = Target(iid, "ids", policy)
        scenario.requests.append(("ids", json.dumps({"computeInstanceIds": members}), members))

    for n in range(cfg.singles):
        iid = next(pool)
        state.update_instance(iid, labels={"chaos": "single"})
        scenario.targets[iid] = Target(iid, "single", policy)
        body = {"computeInstanceId": iid, "requestedBy": "chaos"}
        if n % 2:
            body["policyId"] = policy
        scenario.requests.append(("single", json.dumps(body), [iid]))

    low, high = cfg.backup_seconds
    for iid in ids:
        state.set_backup_duration(iid, rng.uniform(low, high) * cfg.time_scale)
    special = rng.sample(sorted(scenario.targets), cfg.offline + cfg.failing)
    for iid in special[: cfg.offline]:
        state.set_agent_online(iid, False)
        target = scenario.targets[iid]
        target.expect, target.error_code, target.starts = "failed", "AGENT_OFFLINE", 0
    for iid in special[cfg.offline :]:
        state.set_failure(iid, code=13, message="chaos: the vault is full", at=0.5)
        target = scenario.targets[iid]
        target.expect, target.error_code = "failed", "INTERNAL"
    return scenario


# --- the chaos -----------------------------------------------------------------------------------------------


class Killed(BaseException):
    """A chaos kill. A BaseException, so that no `except Exception` in the function can swallow it: a killed
    process runs nothing more."""


class DyingContext:
    """The platform's context for one invocation: its time runs out after `timeout` seconds, and it may die at
    the `kill_at`-th API attempt.

    The Yandex Cloud client asks the context for the time left (`get_remaining_time_in_millis`) before every HTTP
    attempt and before every retry sleep (ycloud.transport: `_left()`), from whichever thread makes the call. From
    the `kill_at`-th ask on (or once the timeout has passed), every ask raises `Killed`: the attempt about to be
    made and every later one die, in the handler's thread and in its execute pool alike, and whatever the handler
    had not yet done (send the tickets, emit the results, answer the platform) is never done. What was done before
    stays done: started operations (an answer lost on the way counts as done), tickets and results already sent.
    """

    def __init__(self, inner: Any, kill_at: int | None, timeout: float) -> None:
        self._inner = inner
        self._kill_at = kill_at
        self._asks = 0
        self._lock = threading.Lock()
        self.began = time.monotonic()
        self.deadline = self.began + timeout
        self.killed: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get_remaining_time_in_millis(self) -> int:
        now = time.monotonic()
        with self._lock:
            self._asks += 1
            if self.killed is None and self._kill_at is not None and self._asks >= self._kill_at:
                self.killed = "killed mid-way"
            if self.killed is None and now >= self.deadline:
                self.killed = "timed out"
            if self.killed is not None:
                raise Killed(self.killed)
        inner: int = self._inner.get_remaining_time_in_millis()
        return max(0, min(inner, int((self.deadline - now) * 1000)))


def batch_message_ids(event: dict[str, Any]) -> list[str]:
    if "Records" in event:
        return [record["messageId"] for record in event["Records"]]
    return [message["details"]["message"]["message_id"] for message in event.get("messages", [])]


class Chaos:
    """The seeded decisions (duplicate, kill and how) and what they did."""

    def __init__(self, cfg: ChaosConfig, rng: random.Random) -> None:
        self.cfg = cfg
        self.rng = rng
        self.lock = threading.Lock()
        self.kills: Counter[str] = Counter()  # message id -> mid-way/after kills so far
        self.stats: Counter[str] = Counter()
        self.active = 0  # handlers running now
        self.longest: dict[str, float] = {}  # function -> longest invocation, seconds

    def duplicate(self, message_id: str) -> bool:
        with self.lock:
            hit = self.rng.random() < self.cfg.duplicate_rate
            self.stats["duplicated"] += hit
            return hit

    def kill_at_start(self, function: str) -> bool:
        with self.lock:
            hit = self.rng.random() < self.cfg.kill_at_start_rate
            self.stats[f"killed at start ({function})"] += hit
            return hit

    def _decide(self, ids: list[str]) -> tuple[str | None, int | None]:
        with self.lock:
            if any(self.kills[i] >= self.cfg.max_kills_per_message for i in ids):
                return None, None
            r = self.rng.random()
            if r < self.cfg.kill_midway_rate:
                mode: str | None = "midway"
            elif r < self.cfg.kill_midway_rate + self.cfg.kill_after_rate:
                mode = "after"
            else:
                return None, None
            for i in set(ids):
                self.kills[i] += 1
            # anywhere from the first API attempt to a little past the calls a batch usually makes
            kill_at = self.rng.randint(1, 2 * len(set(ids)) + 2) if mode == "midway" else None
            return mode, kill_at

    def wrap(self, handler: Handler, function: str) -> Handler:
        def invoke(event: dict[str, Any], context: Any) -> Any:
            mode, kill_at = self._decide(batch_message_ids(event))
            dying = DyingContext(context, kill_at, self.cfg.function_timeout)
            with self.lock:
                self.active += 1
                self.stats[f"invocations ({function})"] += 1
            try:
                try:
                    reply = handler(event, dying)
                except Killed as kill:
                    with self.lock:
                        self.stats[f"{kill} ({function})"] += 1
                    where = f" at API attempt {kill_at}" if dying.killed == "killed mid-way" else ""
                    raise TimeoutError(f"chaos: {function} {kill}{where}") from None
                if dying.killed:  # the kill fired but the handler went on: something swallowed it
                    with self.lock:
                        self.stats[f"kill swallowed ({function})"] += 1
                    raise TimeoutError(f"chaos: {function} {dying.killed}, but went on")
                if time.monotonic() > dying.deadline:  # ran past its timeout without asking: the platform kills it
                    with self.lock:
                        self.stats[f"timed out ({function})"] += 1
                    raise TimeoutError(f"chaos: {function} timed out")
                if mode == "after":
                    with self.lock:
                        self.stats[f"killed after the work ({function})"] += 1
                    raise TimeoutError(f"chaos: {function} killed after its work, before the batch was settled")
                return reply
            finally:
                took = time.monotonic() - dying.began
                with self.lock:
                    self.active -= 1
                    self.longest[function] = max(self.longest.get(function, 0.0), round(took, 2))

        return invoke


# --- the round ---------------------------------------------------------------------------------------------


@contextmanager
def serial_sqs() -> Iterator[str]:
    """moto's SQS server on 127.0.0.1 answering one request at a time; yields its endpoint (see conftest)."""
    import functools

    import moto.sqs.models as sqs_models
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    app = DomainDispatcherApplication(create_backend_app)
    # Two costs of moto that have nothing to do with SQS semantics: it finds the backend of a request by walking
    # its module directory on disk (about 3 ms a request), and its clock builds datetimes (its queue attributes
    # scan every message several times per request, so the clock dominates as queues grow). Same values, faster.
    app.get_backend_for_host = functools.lru_cache(maxsize=16)(app.get_backend_for_host)  # type: ignore[method-assign]
    clocks = (sqs_models.unix_time, sqs_models.unix_time_millis)
    sqs_models.unix_time = lambda dt=None: time.time() if dt is None else clocks[0](dt)
    sqs_models.unix_time_millis = lambda dt=None: time.time() * 1000.0 if dt is None else clocks[1](dt)
    lock = threading.Lock()

    def serialised(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with lock:
            return [b"".join(app(environ, start_response))]

    class KeepAlive(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"  # werkzeug's default (1.0) opens a connection per request

    server = make_server("127.0.0.1", 0, serialised, threaded=True, request_handler=KeepAlive)
    thread = threading.Thread(target=server.serve_forever, name="chaos-sqs", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        sqs_models.unix_time, sqs_models.unix_time_millis = clocks


# --- running it ------------------------------------------------------------------------------------------


@dataclass
class Observed:
    results: list[dict[str, Any]]  # every result event message, duplicates included
    execute_log: list[dict[str, Any]]
    pending: dict[str, dict[str, int]]  # queue -> visible / in_flight / delayed
    dead_letter: dict[str, list[str]]  # queue -> bodies
    timed_out: bool
    seconds: float
    stats: Counter[str]
    platform_errors: list[str]
    longest: dict[str, float]
    api_calls: Counter[str] = field(default_factory=Counter)  # emulator requests by injected fault ("" for none)
    history: dict[str, list[str]] = field(default_factory=dict)  # message id -> how its deliveries ended
    bodies: dict[str, str] = field(default_factory=dict)  # message id -> body (the messages the round sent)


@dataclass
class RoundResult:
    scenario: Scenario
    observed: Observed
    violations: list[tuple[str, str]]

    def kinds(self) -> set[str]:
        return {kind for kind, _ in self.violations}

    def summary(self) -> str:
        o, cfg = self.observed, self.scenario.config
        statuses = Counter(e.get("data", {}).get("status") for e in {e["id"]: e for e in o.results}.values())
        lines = [
            f"chaos round: platform={cfg.platform} seed={cfg.seed} targets={len(self.scenario.targets)} "
            f"in {o.seconds:.1f}s{' (TIMED OUT)' if o.timed_out else ''}",
            f"  result messages {len(o.results)}, distinct ids {len({e['id'] for e in o.results})}: {dict(statuses)}",
            f"  API calls {sum(o.api_calls.values())}, faults { {k: v for k, v in o.api_calls.items() if k} }",
            f"  backups started {len(o.execute_log)}; longest invocations {o.longest}s",
            f"  chaos: {dict(sorted(o.stats.items()))}",
            f"  dead letters: { {q: len(b) for q, b in o.dead_letter.items()} }; pending: {o.pending}",
        ]
        if o.platform_errors:
            lines.append(f"  platform errors ({len(o.platform_errors)}): {o.platform_errors[:3]}")
        if self.violations:
            by_kind: dict[str, list[str]] = defaultdict(list)
            for kind, detail in self.violations:
                by_kind[kind].append(detail)
            lines.append(f"  {len(self.violations)} violation(s): { {k: len(v) for k, v in by_kind.items()} }")
            for kind, details in by_kind.items():
                lines += [f"    [{kind}] {detail}" for detail in details[:5]]
        return "\n".join(lines)


def run_round(
    cfg: ChaosConfig,
    *,
    state: EmulatorState,
    emulator_url: str,
    token: str,
    sqs_endpoint: str,
    setenv: Callable[[str, str], None],
    delenv: Callable[[str], None],
) -> RoundResult:
    import app

    rng = random.Random(f"chaos:{cfg.seed}:{cfg.platform}")
    scenario = build_scenario(state, cfg, rng)
    chaos = Chaos(cfg, random.Random(f"chaos-decisions:{cfg.seed}:{cfg.platform}"))

    requests = LocalPlatform(
        sqs_endpoint=sqs_endpoint,
        platform=cfg.platform,
        batch_size=cfg.request_batch,
        max_receive_count=cfg.max_receive_count,
        visibility_timeout=cfg.request_visibility,
        sqs=_client(sqs_endpoint),
        kill=chaos.kill_at_start,
        duplicate=chaos.duplicate,
    )
    followups = LocalPlatform(
        sqs_endpoint=sqs_endpoint,
        platform=cfg.platform,
        batch_size=cfg.followup_batch_size,
        max_receive_count=cfg.max_receive_count,
        visibility_timeout=cfg.followup_visibility,
        sqs=requests.sqs,
        queues=requests.queues,  # one set of queues, two trigger configurations (batch size, visibility)
        dead_letter=requests.dead_letter,
        kill=chaos.kill_at_start,
        duplicate=chaos.duplicate,
    )
    requests.create_queue("requests")
    requests.create_queue("results")
    followups.create_queue("followups")

    for name in ("DEFAULT_REQUEST", "DEFAULT_POLICY_ID", "DEFAULT_POLICY_NAME", "RESULT_WEBHOOK_URL",
                 "RESULTS_FAILURES_ONLY", "YC_SERVICE_ACCOUNT_KEY", "MAX_BODY_BYTES", "OPT_OUT_LABEL"):  # fmt: skip
        delenv(name)
    env = {
        "YC_API_ENDPOINT": emulator_url,
        "YC_IAM_TOKEN": token,
        "FOLDER_ID": CHAOS_FOLDER_ID,
        "AWS_ENDPOINT_URL_SQS": sqs_endpoint,
        "REQUEST_QUEUE_URL": requests.queues["requests"],
        "FOLLOWUP_QUEUE_URL": requests.queues["followups"],
        "RESULT_QUEUE_URL": requests.queues["results"],
        "REQUEST_DLQ_URL": requests.dead_letter["requests"],
        "FOLLOWUP_DLQ_URL": requests.dead_letter["followups"],
        "FANOUT_THRESHOLD": str(cfg.fanout_threshold),
        "HANDOFF_SECRET": "chaos-fanout-key",
        "EXECUTE_CONCURRENCY": "8",
        "YC_MAX_RETRIES": "5",  # the default: most faults are retried away, the rest make redeliveries
        "FOLLOWUP_FIRST_DELAY_SECONDS": "1",
        "FOLLOWUP_MIN_DELAY_SECONDS": "1",
        "FOLLOWUP_MAX_DELAY_SECONDS": "3",
        # Yandex rounds speak the query protocol, as the function does to Yandex Message Queue (adapters.sqs_query)
        "SQS_PROTOCOL": "query" if cfg.platform == "yandex" else "json",
    }
    for key, value in env.items():
        setenv(key, value)

    # The triggers and the poison requests, in a seeded order. Trigger ids are the SQS message ids. The poison
    # tickets go in later (send_poison_tickets), among live tickets.
    sqs = requests.sqs
    outgoing: list[tuple[str, list[str] | None, str]] = [
        (body, members, label) for label, body, members in scenario.requests
    ]
    if cfg.with_poison:
        outgoing += [(body, None, name) for name, body in POISON_REQUESTS.items()]
    rng.shuffle(outgoing)
    bodies: dict[str, str] = {}  # message id -> body, of the messages sent here
    for body, members, label in outgoing:
        message_id = sqs.send_message(QueueUrl=requests.queues["requests"], MessageBody=body)["MessageId"]
        bodies[message_id] = body
        if members is None:
            scenario.poison_requests[message_id] = label
        for iid in members or []:
            scenario.targets[iid].trigger_id = message_id

    def send_poison_tickets() -> None:
        for name, body in POISON_TICKETS.items():
            message_id = sqs.send_message(QueueUrl=requests.queues["followups"], MessageBody=body)["MessageId"]
            bodies[message_id] = body
            scenario.poison_tickets[message_id] = name

    rate = cfg.fault_rate
    state.set_faults(
        [FaultRule(rate_429=rate * 0.3, rate_503=rate * 0.3, drop_rate=rate * 0.2, drop_response_rate=rate * 0.2)],
        seed=f"{cfg.seed}:{cfg.platform}",
    )
    lanes = [
        (requests, "requests", chaos.wrap(app.trigger_handler, "trigger"), "trigger"),
        (followups, "followups", chaos.wrap(app.followup_handler, "followup"), "followup"),
    ]
    stop = threading.Event()
    platform_errors: list[str] = []

    idle_until = [0.0] * len(lanes)  # an empty receive rests its lane a little: fewer empty polls of the server

    def worker(index: int) -> None:
        order = random.Random(f"{cfg.seed}:worker:{index}")
        while not stop.is_set():
            busy = False
            for lane in order.sample(range(len(lanes)), len(lanes)):
                if time.monotonic() < idle_until[lane]:
                    continue
                platform, queue, handler, function = lanes[lane]
                try:
                    delivered = platform.deliver(queue, handler, function) is not None
                except Exception as exc:  # the local platform's own SQS calls: keep playing, report it
                    platform_errors.append(f"{type(exc).__name__}: {exc}")
                    delivered = False
                if delivered:
                    busy = True
                else:
                    idle_until[lane] = time.monotonic() + 0.2
            if not busy:
                stop.wait(0.05)

    def collect(limit: int = 5) -> None:
        """Take result events off the result queue (a few batches per call: the loop stays responsive)."""
        url = requests.queues["results"]
        for _ in range(limit):
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return
            results.extend(json.loads(m["Body"]) for m in messages)
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)

    results: list[dict[str, Any]] = []
    started = time.monotonic()
    deadline = started + cfg.budget_seconds
    threads = [threading.Thread(target=worker, args=(i,), name=f"chaos-{i}", daemon=True) for i in range(cfg.workers)]
    for thread in threads:
        thread.start()
    timed_out = True
    quiet_since: float | None = None
    verbose = bool(os.environ.get("CHAOS_VERBOSE"))
    next_report = started
    poison_due: float | None = started + cfg.poison_ticket_delay if cfg.with_poison else None
    try:
        while time.monotonic() < deadline:
            if poison_due is not None and time.monotonic() >= poison_due:
                poison_due = None
                send_poison_tickets()
            if verbose and time.monotonic() >= next_report:
                next_report += 5
                print(
                    f"[{time.monotonic() - started:5.1f}s] requests {requests.counts('requests')} "
                    f"followups {requests.counts('followups')} results {len(results)} "
                    f"executes {len(state.execute_log)} {dict(chaos.stats)}",
                    flush=True,
                )
            collect()
            busy = chaos.active or requests.pending("requests") or requests.pending("followups")
            now = time.monotonic()
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= 1.5 and poison_due is None:
                timed_out = False
                break
            time.sleep(0.25)
    finally:
        stop.set()
        join_by = time.monotonic() + 20  # a handler stuck past this is a finding of its own: it shows as in flight
        for thread in threads:
            thread.join(timeout=max(0.0, join_by - time.monotonic()))
    seconds = time.monotonic() - started
    state.clear_faults()
    collect(limit=10_000)
    observed = Observed(
        results=results,
        execute_log=state.execute_log,
        pending={q: requests.counts(q) for q in ("requests", "followups")},
        dead_letter={
            q: [m["Body"] for m in requests.drain(q, dead_letter=True)] for q in ("requests", "followups", "results")
        },
        timed_out=timed_out,
        seconds=seconds,
        stats=chaos.stats,
        platform_errors=platform_errors,
        longest=chaos.longest,
        api_calls=Counter(str(call.get("fault") or "") for call in state.call_log),
        history=_history(requests, followups, bodies),
        bodies=bodies,
    )
    for url in [*requests.queues.values(), *requests.dead_letter.values()]:
        with contextlib.suppress(Exception):
            sqs.delete_queue(QueueUrl=url)
    return RoundResult(scenario, observed, check(scenario, observed))


def _client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=20)
    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", config=config)


def _history(requests: LocalPlatform, followups: LocalPlatform, bodies: dict[str, str]) -> dict[str, list[str]]:
    """For the messages sent by the round: how each delivery of it ended (for the violation reports)."""
    out: dict[str, list[str]] = defaultdict(list)
    for invocation in [*requests.invocations, *followups.invocations]:
        ended = invocation.error or "ok"
        if isinstance(invocation.reply, dict) and invocation.reply.get("ok") is False:
            ended = f"refused: {json.dumps(invocation.reply)[:200]}"
        elif isinstance(invocation.reply, dict) and invocation.reply.get("batchItemFailures"):
            ended = f"partly failed: {json.dumps(invocation.reply)[:200]}"
        for message_id in dict.fromkeys(invocation.message_ids):
            if message_id in bodies:
                out[message_id].append(f"{ended[:200]} (batch of {len(invocation.message_ids)})")
    return dict(out)


# --- the checker ---------------------------------------------------------------------------------------------


def _signature(event: dict[str, Any]) -> tuple[Any, ...]:
    """What every copy of one result event must agree on (times may differ: an end noticed twice)."""
    data = event.get("data") or {}
    error = data.get("error") or {}
    return (
        event.get("type"),
        event.get("subject"),
        data.get("status"),
        data.get("computeInstanceId"),
        data.get("policyId"),
        data.get("operationId"),
        data.get("triggerId"),
        error.get("code"),
    )


def check(scenario: Scenario, observed: Observed) -> list[tuple[str, str]]:
    """Every way the round broke the contract (see the module docstring); empty when it held."""
    out: list[tuple[str, str]] = []
    cfg = scenario.config
    if observed.timed_out:
        out.append(("timeout", f"not settled within {cfg.budget_seconds:g}s"))
    for queue, counts in observed.pending.items():
        if sum(counts.values()):
            out.append(("in-flight", f"{queue} queue still holds {counts}"))

    # results: copies of one id agree, one instance per id, one id per instance
    copies: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    ids_of_instance: dict[str, set[str]] = defaultdict(set)
    instances_of_id: dict[str, set[str]] = defaultdict(set)
    ids_of_trigger: dict[str, set[str]] = defaultdict(set)  # results without an instance: the request as asked
    last: dict[str, dict[str, Any]] = {}
    for event in observed.results:
        eid = event["id"]
        copies[eid].add(_signature(event))
        last[eid] = event
        data = event.get("data") or {}
        iid = data.get("computeInstanceId")
        if iid:
            ids_of_instance[iid].add(eid)
            instances_of_id[eid].add(iid)
        else:
            ids_of_trigger[data.get("triggerId", "?")].add(eid)
    for eid, signatures in copies.items():
        if len(signatures) > 1:
            out.append(
                ("result-conflict", f"event {eid} was emitted with different contents: {sorted(signatures, key=repr)}")
            )
    for eid, instances in instances_of_id.items():
        if len(instances) > 1:
            out.append(("result-id-shared", f"event {eid} is about several instances: {sorted(instances)}"))

    targets = scenario.targets
    for iid in sorted(set(targets) - set(ids_of_instance)):
        out.append(("result-missing", f"no result for target {iid} ({targets[iid].via})"))
    for trigger_id in sorted({targets[i].trigger_id for i in set(targets) - set(ids_of_instance)}):
        tries = observed.history.get(trigger_id, [])
        out.append(("result-missing", f"request {trigger_id} had {len(tries)} deliveries: {tries}"))
    for iid in sorted(set(ids_of_instance) - set(targets)):
        kind = "opted-out" if iid in scenario.opted_out else "unknown"
        out.append(("result-unexpected", f"a result for {kind} instance {iid}"))
    for iid in sorted(set(targets) & set(ids_of_instance)):
        target, eids = targets[iid], ids_of_instance[iid]
        if len(eids) != 1:
            out.append(("result-duplicate", f"target {iid} has {len(eids)} distinct result events"))
            continue
        data = last[next(iter(eids))]["data"]
        error_code = (data.get("error") or {}).get("code")
        got = (data.get("status"), error_code, data.get("triggerId"), data.get("policyId"))
        want = (target.expect, target.error_code, target.trigger_id, target.policy_id)
        if got != want:
            out.append(("result-wrong", f"target {iid} ({target.via}): got {got}, expected {want}"))

    # the poison requests: consumed, each with one failed result whose target is the request as asked
    for message_id, name in sorted(scenario.poison_requests.items()):
        eids = ids_of_trigger.get(message_id, set())
        if len(eids) != 1:
            out.append(("poison-result", f"poison request {name!r} has {len(eids)} distinct result events"))
            continue
        data = last[next(iter(eids))]["data"]
        if data.get("status") != "failed":
            out.append(("poison-result", f"poison request {name!r} ended {data.get('status')}"))
    refused = {i: n for i, n in scenario.poison_tickets.items() if n in REFUSED_TICKETS}
    for message_id, name in sorted(refused.items()):
        eids = ids_of_trigger.get(message_id, set())
        codes = {(last[e]["data"].get("error") or {}).get("code") for e in eids}
        if len(eids) != 1 or codes != {"INVALID_TICKET"}:
            out.append(("poison-result", f"refused ticket {name!r} has results {sorted(eids)} with codes {codes}"))
    for trigger_id in sorted(set(ids_of_trigger) - set(scenario.poison_requests) - set(refused)):
        out.append(("result-unexpected", f"a result without an instance for trigger {trigger_id}"))

    # the execute log: one backup per (trigger, policy, instance); none where Execute is refused or not asked
    starts = Counter((e["policyId"], e["computeInstanceId"]) for e in observed.execute_log)
    for iid, target in sorted(targets.items()):
        n = starts.pop((target.policy_id, iid), 0)
        if n > target.starts:
            out.append(("double-backup", f"instance {iid} ({target.via}) was backed up {n} times for one trigger"))
        elif n < target.starts:
            out.append(("backup-missing", f"instance {iid} ({target.via}) was never backed up"))
    for (policy_id, iid), n in sorted(starts.items()):
        out.append(("backup-unexpected", f"instance {iid} (not a target) was backed up {n} times ({policy_id})"))

    # dead-letter queues: exactly the malformed tickets, once each
    poison_bodies = Counter(
        POISON_TICKETS[name] for name in scenario.poison_tickets.values() if name not in REFUSED_TICKETS
    )
    dead = Counter(observed.dead_letter.get("followups", []))
    if scenario.config.platform == "yandex":
        # On Yandex the function copies poison to the dead-letter queue itself (handlers.batch); an invocation
        # killed after that copy brings the batch back, so the copy may be made again: at least once, like any
        # other side effect here. Each poison body must be there; nothing else may be.
        dead = Counter({body: min(n, poison_bodies[body]) if body in poison_bodies else n for body, n in dead.items()})
    for body in (poison_bodies - dead).elements():
        out.append(("dlq-missing", f"malformed ticket {body[:60]!r} is not in the dead-letter queue"))
    for body, n in (dead - poison_bodies).items():
        out.append(("dlq-unexpected", f"{n} unexpected dead letter(s) on followups: {body[:120]!r}"))
    for queue in ("requests", "results"):
        for body in observed.dead_letter.get(queue, []):
            ids = [i for i, b in observed.bodies.items() if b == body]
            tries = [t for i in ids for t in observed.history.get(i, [])]
            out.append(("dlq-unexpected", f"dead letter on {queue}: {body[:100]!r}; {len(tries)} deliveries: {tries}"))
    if observed.stats.get("kill swallowed (trigger)") or observed.stats.get("kill swallowed (followup)"):
        out.append(("kill-swallowed", "a killed invocation went on working"))
    return out
