"""function/app.py's init: nothing is read too early, and neither botocore's clients nor boto3 are loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import app

ROOT = Path(__file__).resolve().parents[2]


def test_importing_app_loads_no_aws_sdk_and_reads_no_settings() -> None:
    # powertools' user_agent imports the bare `botocore` package when it is installed (it tolerates its
    # absence); what costs a cold start is botocore's session, models and endpoint data, which must stay out.
    code = (
        "import os, sys; sys.path[:0] = ['function']; os.environ.pop('FOLDER_ID', None); import app; "
        "print(sorted(m for m in ('boto3', 's3transfer', 'slack_sdk', 'jwt', 'botocore.session', "
        "'botocore.client', 'botocore.auth', 'botocore.endpoint') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_clean_env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_importing_app_loads_the_aws_adapters() -> None:
    code = (
        "import sys; sys.path[:0] = ['function']; import app; "
        "print(all(m in sys.modules for m in ('adapters.aws', 'adapters.sqs', 'adapters.secrets')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_the_key_signing_libraries_are_loaded_in_init_only_where_a_key_is_named() -> None:
    code = "import sys; sys.path[:0] = ['function']; import app; print('jwt' in sys.modules)"
    for variable, expected in (("YC_SERVICE_ACCOUNT_KEY_SECRET_ARN", "True"), ("YC_SERVICE_ACCOUNT_KEY", "True")):
        env = {**_clean_env(), variable: "arn:aws:secretsmanager:us-east-1:1:secret:k"}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected, variable
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_clean_env(), capture_output=True, text=True)
    assert out.stdout.strip() == "False"


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("YC_SERVICE_ACCOUNT_KEY")}


def test_the_entry_points_are_plain_functions_of_the_module() -> None:
    assert callable(app.trigger_handler) and callable(app.followup_handler)
    assert app.trigger_handler.__module__ == app.followup_handler.__module__ == "app"
