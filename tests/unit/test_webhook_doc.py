"""docs/WEBHOOK.md, run as written: the openssl pipelines and the curl call against a stand-in front."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from security.common import Unauthorized
from security.hmac_v1 import verify_webhook
from security.http_auth import authorize
from settings import Settings

SECRET = "s3cr3t-webhook-key-0123456789"
BODY = b'{"instanceName":"web1","reason":"nightly CI"}'


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


# --- docs/WEBHOOK.md: the openssl pipeline and the curl call, exactly as written there ---------------------------

PIPELINE = """ts=$(date +%s)
sig=$(printf '%s.%s' "$ts" "$(cat body.json)" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.* //')
printf '%s\\n%s\\n' "$ts" "$sig"
"""
ROBUST_PIPELINE = """ts=$(date +%s)
sig=$({ printf '%s.' "$ts"; cat body.json; } | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.* //')
printf '%s\\n%s\\n' "$ts" "$sig"
"""


def test_the_pipelines_tested_here_are_the_ones_in_the_doc() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "WEBHOOK.md").read_text()
    for script in (PIPELINE, ROBUST_PIPELINE):
        sig_line = script.splitlines()[1]
        assert sig_line in doc
    assert "ts=$(date +%s)" in doc
    assert "--data-binary @body.json" in doc and "X-Backup-Signature: v1=$sig" in doc


needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("bash") is None, reason="openssl and bash are needed"
)


def run_pipeline(script: str, workdir: Path, secret: str) -> tuple[str, str]:
    out = subprocess.run(
        ["bash", "-c", script],
        cwd=workdir,
        env={"PATH": "/usr/bin:/bin", "SECRET": secret, "LC_ALL": "C"},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    ts, sig = out.stdout.split()
    return ts, sig


@needs_openssl
class TestDocumentedOpensslPipeline:
    def test_the_documented_pipeline_is_accepted(self, tmp_path: Path) -> None:
        body = b'{"instanceName": "web1", "reason": "release 1.2 & hotfix"}'
        (tmp_path / "body.json").write_bytes(body)  # no trailing newline, as the doc says
        ts, sig = run_pipeline(PIPELINE, tmp_path, SECRET)
        assert len(sig) == 64
        verify_webhook({"X-Backup-Timestamp": ts, "X-Backup-Signature": f"v1={sig}"}, body, SECRET)

    def test_a_trailing_newline_breaks_the_short_pipeline_but_not_the_robust_one(self, tmp_path: Path) -> None:
        body = b'{"instanceName": "web1"}\n'  # what most editors save; curl --data-binary sends the newline
        (tmp_path / "body.json").write_bytes(body)
        ts, sig = run_pipeline(PIPELINE, tmp_path, SECRET)  # $(cat ...) drops the trailing newline
        with pytest.raises(Unauthorized):
            verify_webhook({"X-Backup-Timestamp": ts, "X-Backup-Signature": f"v1={sig}"}, body, SECRET)
        ts, sig = run_pipeline(ROBUST_PIPELINE, tmp_path, SECRET)
        verify_webhook({"X-Backup-Timestamp": ts, "X-Backup-Signature": f"v1={sig}"}, body, SECRET)

    def test_the_wrong_secret_in_the_pipeline_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "body.json").write_bytes(BODY)
        ts, sig = run_pipeline(PIPELINE, tmp_path, "not-the-secret")
        with pytest.raises(Unauthorized):
            verify_webhook({"X-Backup-Timestamp": ts, "X-Backup-Signature": f"v1={sig}"}, BODY, SECRET)


class _Gate(BaseHTTPRequestHandler):
    """A stand-in HTTP front: the gate for the backup route, then 200 or 401 with the message."""

    gate_settings: Settings

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            authorize(self.gate_settings, "backup", dict(self.headers), body)
            status, answer = 200, b"accepted"
        except Unauthorized as exc:
            status, answer = 401, str(exc).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def gate() -> Iterator[str]:
    handler = type("Handler", (_Gate,), {"gate_settings": settings(WEBHOOK_SECRET=SECRET)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


CURL = PIPELINE.replace(
    'printf \'%s\\n%s\\n\' "$ts" "$sig"\n',
    'curl -sS -o /dev/null -w \'%{http_code}\' -H "X-Backup-Timestamp: $ts" -H "X-Backup-Signature: v1=$sig" '
    "-H 'Content-Type: application/json' --data-binary @body.json \"$URL/backup\"\n",
)


@needs_openssl
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is needed")
@pytest.mark.parametrize(("secret", "status"), [(SECRET, "200"), ("wrong", "401")])
def test_the_documented_curl_call_end_to_end(gate: str, tmp_path: Path, secret: str, status: str) -> None:
    (tmp_path / "body.json").write_bytes(BODY)
    out = subprocess.run(
        ["bash", "-c", CURL],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "SECRET": secret, "URL": gate, "LC_ALL": "C", "NO_PROXY": "*"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout == status
