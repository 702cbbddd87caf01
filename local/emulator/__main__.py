"""python -m local.emulator --port 8710 [--host 127.0.0.1] [--time-scale 60] [--seed demo] [--key-file key.json]"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading

from local.emulator.config import PROGRESS_MODES, EmulatorConfig
from local.emulator.seed import DEMO_SA_ID, demo_summary
from local.emulator.server import start_emulator


def shell_lines(url: str, token: str) -> list[str]:
    """What the command line prints: valid shell, so a user can `eval` it (or paste it): `export` lines for the
    variables the function reads (YC_API_ENDPOINT, YC_IAM_TOKEN, FOLDER_ID), everything else as comments."""
    lines = [f"# Yandex Cloud emulator listening on {url}", f"export YC_API_ENDPOINT={shlex.quote(url)}"]
    if token:
        summary = demo_summary()
        lines.append(f"export YC_IAM_TOKEN={shlex.quote(token)}")
        lines.append(f"export FOLDER_ID={shlex.quote(summary['folderId'])}")
        lines.extend(f"# {line}" for line in json.dumps(summary, indent=2).splitlines())
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.emulator", description="Local Yandex Cloud emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8710)
    parser.add_argument("--time-scale", type=float, default=1.0, help="a nominal backup lasts duration/scale s")
    parser.add_argument("--seed", default="demo", help="RNG seed for faults and generated ids")
    parser.add_argument("--backup-duration", type=float, default=600.0, help="nominal backup duration, seconds")
    parser.add_argument("--token-lifetime", type=float, default=12 * 3600.0, help="issued IAM tokens, seconds")
    parser.add_argument("--progress-mode", choices=PROGRESS_MODES, default="number")
    parser.add_argument("--empty", action="store_true", help="start without the demo folder")
    parser.add_argument("--key-file", help="write an authorized key of the demo service account to this file")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        time_scale=args.time_scale,
        seed=args.seed,
        demo=not args.empty,
        token_lifetime=args.token_lifetime,
        default_backup_duration=args.backup_duration,
        progress_mode=args.progress_mode,
        verbose=args.verbose,
    )
    emu = start_emulator(config)
    for line in shell_lines(emu.url, emu.token):
        print(line, flush=True)
    if args.key_file:
        key = emu.state.create_authorized_key(DEMO_SA_ID)
        with open(args.key_file, "w", encoding="utf-8") as fh:
            json.dump(key, fh, indent=2)
        print(f"# authorized key of {DEMO_SA_ID} written to {args.key_file}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
