#!/usr/bin/env python3
"""Build the Yandex Cloud Functions package: dist/function.zip.

Layout (what `yc serverless function version create --source-path dist/function.zip` expects):

    app.py, settings.py, ycloud/, backups/, ...   the contents of function/ at the zip root
    requirements.txt                              installed by the platform (`pip install`) at version build
    **/__pycache__/*.cpython-312.pyc              precompiled, unchecked-hash: no compile at cold start

The .pyc files are only used by the interpreter whose cache tag they carry, so they are compiled by the runtime's
Python (`--python`, default `python3.12` for the `python312` runtime); a mismatch is an error unless
`--allow-python-mismatch` is given (the zip then still works, the runtime just ignores the .pyc files).

The archive is deterministic: sorted entries, fixed timestamps and permissions, PYTHONHASHSEED=0 for the compiler,
and .pyc files that embed a source hash instead of a modification time. Only the standard library is used, so
any Python >= 3.10 can run this script.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runtime id -> the interpreter cache tag its Python uses (DOCS en/functions/lang/python/index.md).
RUNTIME_CACHE_TAGS = {"python312": "cpython-312", "python314": "cpython-314"}
RUNTIME_PYTHONS = {"python312": "python3.12", "python314": "python3.14"}
EXCLUDED_DIRS = frozenset(
    {
        "__pycache__",
        "tests",
        "test",
        "local",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".venv",
        "venv",
        "node_modules",
    }
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".swp", ".orig", ".rej", "~")
EXCLUDED_FILES = frozenset({"conftest.py", ".DS_Store", "Thumbs.db", "requirements.txt"})
FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry
UPLOAD_LIMIT = 3_500_000  # bigger packages must go through Object Storage (DOCS _includes/functions/upload-limits.md)

# Runs inside the target interpreter: prints its cache tag, then compiles every .py under a directory.
COMPILE_SNIPPET = """
import compileall, py_compile, sys
root = sys.argv[1]
print(sys.implementation.cache_tag, flush=True)
if len(sys.argv) > 2:
    ok = compileall.compile_dir(
        root, quiet=1, force=True, stripdir=root, workers=1,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    sys.exit(0 if ok else 1)
"""


class PackageError(Exception):
    pass


def _runs(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "pass"], capture_output=True, check=False, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_python(runtime: str) -> str | None:
    """The runtime's interpreter on this machine: `python3.12` on PATH, else a pyenv or /usr/local install."""
    name = RUNTIME_PYTHONS[runtime]
    candidates = [shutil.which(name) or name]
    for pattern in (f"~/.pyenv/versions/{name[6:]}*/bin/{name}", f"/usr/local/bin/{name}", f"/opt/python*/bin/{name}"):
        expanded = Path(pattern).expanduser()
        candidates += sorted(str(p) for p in Path(expanded.anchor).glob(str(expanded.relative_to(expanded.anchor))))
    return next((c for c in candidates if _runs(c)), None)


def source_files(source: Path) -> Iterator[Path]:
    """Files of the deployable tree, sorted, without tests, caches, local stand-ins or hidden files."""
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part in EXCLUDED_DIRS or part.startswith(".") or part.endswith(".egg-info") for part in relative.parts):
            continue
        if not path.is_file() or path.name in EXCLUDED_FILES or path.name.endswith(EXCLUDED_SUFFIXES):
            continue
        if path.name.startswith("test_") and path.suffix == ".py":
            continue
        yield path


def compile_tree(stage: Path, python: str, runtime: str, *, allow_mismatch: bool) -> str:
    """Compile every module of the staged tree with `python`; returns the cache tag the .pyc files carry."""
    expected = RUNTIME_CACHE_TAGS.get(runtime)
    if expected is None:
        raise PackageError(f"unknown runtime {runtime!r}; known: {', '.join(sorted(RUNTIME_CACHE_TAGS))}")
    if shutil.which(python) is None and not Path(python).is_file():
        raise PackageError(
            f"{python!r} not found: the .pyc files must be compiled by the runtime's Python ({expected}). "
            f"Pass --python /path/to/python3.12 (make package RUNTIME_PYTHON=...), or --no-compile."
        )
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPYCACHEPREFIX", None)
    probe = subprocess.run(
        [python, "-c", COMPILE_SNIPPET, str(stage)], capture_output=True, text=True, env=env, check=False
    )
    if probe.returncode != 0:
        raise PackageError(f"{python} did not run: {probe.stderr.strip()}")
    tag = probe.stdout.split()[0]
    if tag != expected and not allow_mismatch:
        raise PackageError(
            f"{python} is {tag}, but runtime {runtime} loads only {expected} .pyc files. Use the matching "
            f"interpreter (--python), or --allow-python-mismatch to build anyway (the runtime would ignore them)."
        )
    result = subprocess.run(
        [python, "-c", COMPILE_SNIPPET, str(stage), "compile"], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        raise PackageError(f"compiling with {python} failed:\n{result.stdout}{result.stderr}")
    return tag


def write_zip(stage: Path, output: Path) -> list[str]:
    """Zip the staged tree deterministically; returns the entry names."""
    names = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the permission bits below are honoured
            info.external_attr = 0o100644 << 16  # regular file, rw-r--r--
            archive.writestr(info, (stage / name).read_bytes())
    partial.replace(output)
    return names


def build(
    source: Path,
    requirements: Path,
    output: Path,
    *,
    python: str | None,
    runtime: str = "python312",
    allow_mismatch: bool = False,
) -> dict[str, object]:
    """Stage function/ + requirements.txt, compile (unless python is None), zip. Returns a summary."""
    if not (source / "app.py").is_file():
        print(f"warning: {source / 'app.py'} is missing: the entry points app.* will not resolve", file=sys.stderr)
    if not requirements.is_file():
        raise PackageError(f"{requirements} not found")
    with tempfile.TemporaryDirectory(prefix="package-") as tmp:
        stage = Path(tmp) / "code"
        for path in source_files(source):
            target = stage / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        shutil.copyfile(requirements, stage / "requirements.txt")
        tag = compile_tree(stage, python, runtime, allow_mismatch=allow_mismatch) if python else None
        names = write_zip(stage, output)
    data = output.read_bytes()
    return {
        "output": str(output),
        "entries": len(names),
        "pyc": sum(1 for n in names if n.endswith(".pyc")),
        "cache_tag": tag,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, default=ROOT / "function", help="deployable tree (default function/)")
    parser.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt")
    parser.add_argument("--output", type=Path, default=ROOT / "dist" / "function.zip")
    parser.add_argument("--runtime", default="python312", choices=sorted(RUNTIME_CACHE_TAGS))
    parser.add_argument(
        "--python", default=None, help="interpreter compiling the .pyc (default: python3.12 for python312)"
    )
    parser.add_argument("--no-compile", action="store_true", help="ship sources only (slower cold starts)")
    parser.add_argument("--allow-python-mismatch", action="store_true")
    args = parser.parse_args(argv)
    python = None if args.no_compile else (args.python or find_python(args.runtime) or RUNTIME_PYTHONS[args.runtime])
    try:
        summary = build(
            args.source,
            args.requirements,
            args.output,
            python=python,
            runtime=args.runtime,
            allow_mismatch=args.allow_python_mismatch,
        )
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 2
    print(
        f"{summary['output']}: {summary['entries']} entries ({summary['pyc']} .pyc, {summary['cache_tag'] or 'none'}), "
        f"{summary['bytes']} bytes, sha256 {summary['sha256']}"
    )
    if int(str(summary["bytes"])) > UPLOAD_LIMIT:
        print("note: over 3.5 MB: upload through Object Storage (see docs/DEPLOY.md)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
