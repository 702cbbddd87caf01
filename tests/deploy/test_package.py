"""scripts/package.py: the Yandex Cloud Functions zip (layout, .pyc, determinism) and, slow, a clean install."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from scripts import package
from tests.deploy.checks import HANDLERS, ROOT

CURRENT_TAG = sys.implementation.cache_tag


def build(source: Path, output: Path, python: str | None = sys.executable) -> dict[str, object]:
    """Build with the interpreter running the tests unless told otherwise (its .pyc tag may differ from 3.12)."""
    return package.build(source, ROOT / "requirements.txt", output, python=python, allow_mismatch=True)


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    """A small deployable tree with everything the packager must leave out."""
    root = tmp_path / "function"
    files = {
        "app.py": "def trigger_handler(event, context):\n    return 'trigger'\n\n"
        "def followup_handler(event, context):\n    return 'followup'\n",
        "settings.py": "VALUE = 1\n",
        "ycloud/__init__.py": "",
        "ycloud/client.py": "from settings import VALUE\n",
        "tests/test_app.py": "",
        "ycloud/tests/test_client.py": "",
        "test_settings.py": "",
        "conftest.py": "",
        "local/runtime.py": "",
        "__pycache__/app.cpython-311.pyc": "stale",
        ".mypy_cache/x.json": "{}",
        ".env": "SECRET=1",
        "requirements.txt": "should-be-replaced-by-the-root-one\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_zip_layout(source: Path, tmp_path: Path) -> None:
    output = tmp_path / "dist" / "function.zip"
    summary = build(source, output)
    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
        requirements = archive.read("requirements.txt").decode()
    assert names == sorted(names)
    assert {"app.py", "settings.py", "ycloud/__init__.py", "ycloud/client.py", "requirements.txt"} <= set(names)
    assert f"__pycache__/app.{CURRENT_TAG}.pyc" in names
    assert f"ycloud/__pycache__/client.{CURRENT_TAG}.pyc" in names
    assert not [n for n in names if n.startswith(("tests/", "local/", ".")) or "/tests/" in n or "/." in n]
    assert not [n for n in names if Path(n).name in ("conftest.py", "test_settings.py", ".env")]
    assert "__pycache__/app.cpython-311.pyc" not in names or CURRENT_TAG == "cpython-311"
    assert requirements == (ROOT / "requirements.txt").read_text()
    assert summary["pyc"] == 4 and summary["cache_tag"] == CURRENT_TAG


def test_zip_entries_have_fixed_metadata(source: Path, tmp_path: Path) -> None:
    output = tmp_path / "function.zip"
    build(source, output)
    with zipfile.ZipFile(output) as archive:
        for info in archive.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert info.compress_type == zipfile.ZIP_DEFLATED


def test_build_is_deterministic(source: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    build(source, first)
    os.utime(source / "app.py", (0, 0))  # a different mtime must not change the archive
    build(source, second)
    assert first.read_bytes() == second.read_bytes()


def test_pyc_is_unchecked_hash_and_used_without_the_source(source: Path, tmp_path: Path) -> None:
    """unchecked-hash .pyc files are loaded without looking at the source: prove it by breaking the source."""
    output = tmp_path / "function.zip"
    build(source, output)
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(output) as archive:
        archive.extractall(unpacked)
        pyc = archive.read(f"__pycache__/settings.{CURRENT_TAG}.pyc")
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, check_source off
    (unpacked / "settings.py").write_text("raise SystemExit('the source was compiled at import')\n")
    result = subprocess.run(
        [sys.executable, "-c", "import settings; print(settings.VALUE)"],
        cwd=unpacked,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": ""},
        check=False,
    )
    assert result.stdout.strip() == "1", result.stderr


def test_interpreter_mismatch_is_refused(source: Path, tmp_path: Path) -> None:
    if CURRENT_TAG == "cpython-312":
        pytest.skip("the test interpreter is the runtime's own")
    with pytest.raises(package.PackageError, match=r"loads only cpython-312"):
        package.build(source, ROOT / "requirements.txt", tmp_path / "f.zip", python=sys.executable)
    code = package.main(["--source", str(source), "--output", str(tmp_path / "f.zip"), "--python", sys.executable])
    assert code == 2


def test_no_compile_ships_sources_only(source: Path, tmp_path: Path) -> None:
    summary = build(source, tmp_path / "f.zip", python=None)
    assert summary["pyc"] == 0 and summary["cache_tag"] is None


def runtime_python() -> str | None:
    return package.find_python("python312")


def test_runtime_python_compiles_for_python312(source: Path, tmp_path: Path) -> None:
    python = runtime_python()
    if python is None:
        pytest.skip("no Python 3.12 on this machine (the python312 runtime's interpreter)")
    output = tmp_path / "function.zip"
    summary = package.build(source, ROOT / "requirements.txt", output, python=python)
    magic = subprocess.run(
        [python, "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with zipfile.ZipFile(output) as archive:
        assert archive.read("__pycache__/app.cpython-312.pyc")[:4].hex() == magic
    assert summary["cache_tag"] == "cpython-312"


def test_real_tree_packages(tmp_path: Path) -> None:
    """The repository's function/ tree: handlers module at the root, .pyc present, nothing from tests or local."""
    output = tmp_path / "function.zip"
    summary = build(ROOT / "function", output)
    with zipfile.ZipFile(output) as archive:
        names = set(archive.namelist())
    assert {"settings.py", "requirements.txt"} <= names
    assert int(str(summary["pyc"])) > 0
    assert not [n for n in names if n.split("/")[0] in ("tests", "local") or "/tests/" in n]
    assert int(str(summary["bytes"])) < package.UPLOAD_LIMIT
    assert "app.py" in names, "function/app.py (the entry points) is not written yet"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_clean_install_imports_the_handlers(tmp_path: Path) -> None:
    """What the platform does: unpack, `pip install -r requirements.txt`, import the entry module."""
    python = runtime_python() or sys.executable
    output = tmp_path / "function.zip"
    build(ROOT / "function", output, python=python)
    code = tmp_path / "code"
    with zipfile.ZipFile(output) as archive:
        archive.extractall(code)
    if not (code / "app.py").is_file():
        pytest.fail("function/app.py (the entry points) is not written yet")
    env_dir = tmp_path / "venv"
    if python == sys.executable:
        venv.create(env_dir, with_pip=True)
    else:
        subprocess.run([python, "-m", "venv", str(env_dir)], check=True)
    env_python = str(env_dir / "bin" / "python")
    install = subprocess.run(
        [env_python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", "requirements.txt"],
        cwd=code,
        capture_output=True,
        text=True,
        check=False,
        timeout=800,
    )
    if install.returncode != 0:
        pytest.skip(f"pip could not install requirements.txt (no network to the registry?): {install.stderr[-800:]}")
    attributes = sorted({handler.split(".")[1] for handler in HANDLERS.values()})
    probe = "import app\n" + "".join(f"assert callable(app.{name}), {name!r}\n" for name in attributes)
    result = subprocess.run(
        [env_python, "-I", "-c", f"import sys; sys.path.insert(0, '.')\n{probe}"],
        cwd=code,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    shutil.rmtree(env_dir, ignore_errors=True)
