"""What the benchmarks run against, hosted by the parent process: the emulator, moto's SQS and the SQS stub.

The function runs in worker processes (bench.worker), so its CPU time and the servers' never share one GIL;
the parent passes the URLs in the worker's environment. Every server listens on 127.0.0.1 and is stopped when
the `with BenchServers()` block ends.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_DIR = ROOT / "function"
TIME_SCALE = 1_000_000.0


@dataclass(frozen=True)
class Folder:
    """A seeded folder of `count` running instances labelled backup=daily, one policy applied to all."""

    count: int
    folder_id: str
    policy_id: str

    def payload(self) -> dict[str, Any]:
        """The request that selects every instance of the folder by label."""
        return {"instanceLabels": {"backup": "daily"}, "folderId": self.folder_id, "policyId": self.policy_id}


@dataclass
class BenchServers:
    sizes: tuple[int, ...] = (1, 10, 100, 1000)
    folders: dict[int, Folder] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)
    emulator: Any = None
    moto: Any = None
    moto_url: str = ""
    moto_sqs: Any = None
    stub: Any = None
    handoff_key: str = ""
    _aws_env: dict[str, dict[str, str]] = field(default_factory=dict)

    def __enter__(self) -> BenchServers:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        from local.emulator import EmulatorConfig, start_emulator
        from local.emulator.seed import create_large_folder, large_folder_policy_id

        # Backups end about a millisecond after they start (a 10-minute nominal backup at a million times real
        # time): the next invocation's Execute is never refused as "already running", and the emulator's own
        # per-request bookkeeping (it scans the operations still running on every call) stays small, so its CPU
        # time is not what the throughput figures measure. The trigger path never polls an operation.
        self.emulator = start_emulator(EmulatorConfig(host="127.0.0.1", port=0, time_scale=TIME_SCALE))
        for n in self.sizes:
            folder_id = f"b1gbenchn{n:011d}"
            create_large_folder(self.emulator.state, folder_id, n, id_prefix=f"fhmb{n}x")
            self.folders[n] = Folder(n, folder_id, large_folder_policy_id(folder_id))

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        self.moto_url = f"http://{host}:{port}"
        import boto3

        self.moto_sqs = boto3.client(
            "sqs", endpoint_url=self.moto_url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        for name in ("followups", "requests"):
            url = self.moto_sqs.create_queue(QueueName=f"bench-{name}-{os.getpid()}")["QueueUrl"]
            self.queues[f"moto:{name}"] = url

        from bench.sqs_stub import SqsStub

        self.stub = SqsStub().start()
        for name in ("followups", "requests", "results"):
            self.queues[f"stub:{name}"] = self.stub.create_queue(f"bench-{name}")

    def stop(self) -> None:
        for server, stop in ((self.stub, "stop"), (self.moto, "stop"), (self.emulator, "stop")):
            if server is not None:
                try:
                    getattr(server, stop)()
                except Exception as exc:  # keep stopping the others
                    print(f"bench: could not stop {type(server).__name__}: {exc}", file=sys.stderr)
        self.stub = self.moto = self.emulator = None

    def next_day(self) -> None:
        """Every backup started so far is done (the next Execute of the same instance is not refused).

        One emulator second: a day and more of nominal time at TIME_SCALE (bench.workerlib.DAY says why no more)."""
        from bench.workerlib import DAY

        self.emulator.state.advance_clock(DAY)
        self.emulator.state.clear_logs()

    def set_latency(self, seconds: float) -> None:
        """Every emulator call answers `seconds` later (0: no added latency)."""
        if seconds > 0:
            self.emulator.state.set_faults([{"path": "*", "latency": seconds}], seed=1)
        else:
            self.emulator.state.clear_faults()

    def aws_deployment(self, slack_secret: str) -> dict[str, dict[str, str]]:
        """The environment template.yaml gives each function (the "aws" CPU model): every secret by ARN, served by
        moto's Secrets Manager, and the Yandex Cloud credentials as a service-account authorized key (in one of
        those secrets), exchanged at the emulator's `POST /iam/v1/tokens`. {"trigger": env, "followup": env};
        `YC_IAM_TOKEN` is emptied (a token set directly would win over the key). The same secrets for every call.
        """
        if not self._aws_env:
            from adapters.aws import SECRETS_MANAGER, AwsJsonClient
            from local.emulator.seed import DEMO_SA_ID

            manager = AwsJsonClient(
                SECRETS_MANAGER,
                endpoint=self.moto_url,
                environ={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"},
            )
            key = json.dumps(self.emulator.state.create_authorized_key(DEMO_SA_ID))
            self.handoff_key = os.urandom(24).hex()
            values = {
                "yc-key": key,
                "webhook": os.urandom(16).hex(),
                "slack": slack_secret,
                "handoff": self.handoff_key,
            }
            arns = {
                name: str(
                    manager.call("CreateSecret", {"Name": f"bench-{name}-{os.getpid()}", "SecretString": value})["ARN"]
                )
                for name, value in values.items()
            }
            common = {
                "YC_IAM_TOKEN": "",
                "YC_SERVICE_ACCOUNT_KEY_SECRET_ARN": arns["yc-key"],
                "HANDOFF_SECRET_ARN": arns["handoff"],
                "SECRETS_MAX_AGE_SECONDS": "300",
                "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.moto_url,
            }
            self._aws_env = {
                "trigger": {**common, "WEBHOOK_SECRET_ARN": arns["webhook"], "SLACK_SIGNING_SECRET_ARN": arns["slack"]},
                "followup": common,
            }
        return self._aws_env

    def followup_ticket(self, key: str | None = None) -> str:
        """A follow-up ticket's queue body for a backup started on the emulator now (done a moment later), signed
        with `key` (HANDOFF_SECRET) when given."""
        import uuid
        from datetime import UTC, datetime, timedelta

        from backups.handoff import FollowupTicket
        from backups.models import TriggerInfo
        from backups.target import BackupTarget
        from local.emulator.seed import INSTANCE_PROD_DB, POLICY_DAILY
        from settings import Settings
        from ycloud.client import YandexCloud

        settings = Settings.model_validate({"YC_API_ENDPOINT": self.emulator.url, "YC_IAM_TOKEN": self.emulator.token})
        cloud = YandexCloud.from_settings(settings)
        operation = cloud.backup_policies.execute(POLICY_DAILY, INSTANCE_PROD_DB, idempotency_key=str(uuid.uuid4()))
        now = datetime.now(UTC)
        ticket = FollowupTicket(
            operation_id=operation.id,
            target=BackupTarget(
                trigger=TriggerInfo(source="bench", trigger_id="bench-followup"),
                asked=f"computeInstanceId={INSTANCE_PROD_DB}",
                policy_id=POLICY_DAILY,
                compute_instance_id=INSTANCE_PROD_DB,
            ),
            started_at=now,
            deadline=now + timedelta(hours=6),
        )
        return (ticket.signed(key) if key else ticket).body()

    def queue_depth(self, sqs: str, name: str) -> int:
        """Messages on one of the bench queues, as the queue itself counts them."""
        url = self.queues[f"{sqs}:{name}"]
        if sqs == "stub":
            return self.stub.queue(url).messages
        attrs = self.moto_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])

    # --- workers ---------------------------------------------------------------------------------------------

    def env(self, sqs: str = "moto", **extra: str) -> dict[str, str]:
        """A clean environment for a worker: the servers' URLs, fake AWS credentials, no user configuration."""
        from local.emulator.seed import DEMO_FOLDER_ID

        sqs_url = self.moto_url if sqs == "moto" else self.stub.url
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": f"{FUNCTION_DIR}{os.pathsep}{ROOT}",
            "LANG": "C.UTF-8",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_SQS": sqs_url,
            "YC_API_ENDPOINT": self.emulator.url,
            "YC_IAM_TOKEN": self.emulator.token,
            "FOLDER_ID": DEMO_FOLDER_ID,
            "FOLLOWUP_QUEUE_URL": self.queues[f"{sqs}:followups"],
        }
        env.update(extra)
        return env

    def spawn(
        self,
        scenario: str,
        spec: dict[str, Any],
        env: dict[str, str],
        timeout: float = 240.0,
        preexec_fn: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Run one bench.worker scenario in a fresh process; its figures (JSON).

        `preexec_fn` runs in the child before exec (bench.cpu: join a CPU quota for the whole process).
        """
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            spec_path = Path(tmp) / "spec.json"
            out_path = Path(tmp) / "out.json"
            spec_path.write_text(json.dumps(spec))
            env = {**env, "BENCH_SPAWN_TIME": repr(time.time())}
            done = subprocess.run(
                [sys.executable, "-m", "bench.worker", scenario, str(spec_path), str(out_path)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,  # the function's log lines (INFO, as deployed)
                stderr=subprocess.PIPE,
                text=True,
                timeout=timeout,
                check=False,
                preexec_fn=preexec_fn,  # one write to a cgroup file: safe between fork and exec
            )
            if done.returncode != 0 or not out_path.exists():
                raise RuntimeError(f"bench worker {scenario!r} failed ({done.returncode}):\n{done.stderr[-3000:]}")
            result: dict[str, Any] = json.loads(out_path.read_text())
            return result
