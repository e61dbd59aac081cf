"""`orch build lambda`: the deployment zip of the serverless control plane, built for real.

The build installs orch's dependencies from PyPI for manylinux aarch64 / CPython 3.12 (wheels cached under
~/.cache/orch-lambda-build), copies orch's three source folders into one `orch` package, compiles bytecode with a
real Python 3.12 and zips the result reproducibly. The tests open the zip and check what Lambda would load.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from orch.control_plane import lambda_build
from orch.control_plane.lambda_build import BuildReport, LambdaBuildError, build_lambda, runtime_requirements

EM_AARCH64 = 183  # ELF e_machine of 64-bit ARM


def _python312_magic() -> bytes:
    interpreter = lambda_build.find_python("3.12")
    out = subprocess.run(
        [str(interpreter), "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return bytes.fromhex(out.stdout.strip())


@pytest.fixture(scope="module")
def python312() -> Path:
    try:
        return lambda_build.find_python("3.12")
    except LambdaBuildError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A snapshot of orch's source folders: the working tree may change while the module's builds run."""
    base = tmp_path_factory.mktemp("orch-sources")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    return {
        name: Path(shutil.copytree(lambda_build.source_folder(name), base / name, ignore=ignore))
        for name in lambda_build.ORCH_PACKAGES
    }


@pytest.fixture(scope="module")
def build(
    tmp_path_factory: pytest.TempPathFactory, python312: Path, sources: dict[str, Path]
) -> tuple[BuildReport, list[str]]:
    messages: list[str] = []
    report = build_lambda(tmp_path_factory.mktemp("lambda-build"), progress=messages.append, sources=sources)
    return report, messages


@pytest.mark.unit
def test_runtime_requirements_are_the_distributions_without_extras() -> None:
    requirements = runtime_requirements()
    names = {r.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in requirements}
    assert {"fastapi", "pydantic", "sqlalchemy", "mangum", "aws-lambda-powertools", "boto3"} <= names
    # extras of orch (dev tools, dask, docker) are not installed into the Lambda
    assert not names & {"pytest", "moto", "dask", "docker", "ruff", "mypy", "hypothesis"}
    # uvicorn's server extras never load behind Mangum
    assert any(r.startswith("uvicorn") and "[" not in r for r in requirements)
    assert all(";" not in r for r in requirements), "markers are evaluated for the target, not passed on"


@pytest.mark.slow
@pytest.mark.integration
def test_zip_holds_orch_and_its_dependencies_for_lambda(build: tuple[BuildReport, list[str]]) -> None:
    report, messages = build
    assert report.zip_path.name == "orch-lambda.zip"
    assert report.zip_path.is_file()
    assert (report.zip_path.parent / "lambda").is_dir()
    assert report.zipped_bytes == report.zip_path.stat().st_size
    with zipfile.ZipFile(report.zip_path) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert report.files == len(infos)
        assert report.unzipped_bytes == sum(info.file_size for info in infos)
        assert report.unzipped_bytes <= lambda_build.LAMBDA_UNZIPPED_LIMIT

        # orch's three source folders, in one package
        if (lambda_build.source_folder("orch.control_plane") / "lambda_handlers.py").exists():
            assert "orch/control_plane/lambda_handlers.py" in names
        assert "orch/control_plane/settings.py" in names
        assert "orch/exceptions.py" in names
        assert any(name.startswith("orch/agents/") for name in names)
        assert not any(name.startswith(("sdk/", "control_plane/", "agents/")) for name in names)

        # dependencies, built for the Lambda platform
        assert any(name.startswith("fastapi/") for name in names)
        assert any(name.startswith("boto3/") for name in names), "boto3 is pinned in the package"
        assert not any(name.startswith("uvloop/") for name in names)
        extensions = [n for n in names if n.startswith("pydantic_core/") and n.endswith(".so")]
        assert extensions, "pydantic_core ships a compiled extension"
        for extension in extensions:
            header = archive.read(extension)[:20]
            assert header[:4] == b"\x7fELF"
            assert int.from_bytes(header[18:20], "little") == EM_AARCH64, f"{extension} is not aarch64"
            assert "aarch64" in extension

        # bytecode from CPython 3.12, next to the sources, unchecked-hash (no mtimes, never re-validated)
        magic = _python312_magic()
        pycs = [n for n in names if n.endswith(".pyc")]
        assert "orch/control_plane/__pycache__/settings.cpython-312.pyc" in names
        assert "orch/control_plane/settings.py" in names
        assert all(Path(n).parent.name == "__pycache__" and n.endswith(".cpython-312.pyc") for n in pycs)
        for name in pycs[:: max(1, len(pycs) // 50)]:
            head = archive.read(name)[:8]
            assert head[:4] == magic, name
            assert int.from_bytes(head[4:8], "little") == 0b01, f"{name} is not an unchecked-hash pyc"

        # nothing Lambda does not need, nothing from the build machine
        assert not any(name.startswith("bin/") for name in names)
        assert not any("/tests/" in name and name.startswith("orch/") for name in names)
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in infos)
        assert names == sorted(names, key=lambda n: Path(n).parts)
    assert messages[-1] == report.summary()


@pytest.mark.slow
@pytest.mark.integration
def test_same_input_gives_the_same_zip_without_the_index(
    build: tuple[BuildReport, list[str]], sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second build installs from the wheelhouse the first one filled: with pip's indexes switched off it still
    succeeds, and it gives the same bytes."""
    first, _ = build
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    second = build_lambda(tmp_path, sources=sources)
    assert hashlib.sha256(second.zip_path.read_bytes()).digest() == hashlib.sha256(first.zip_path.read_bytes()).digest()


@pytest.mark.slow
@pytest.mark.integration
def test_a_package_over_the_limit_is_refused(tmp_path: Path, python312: Path) -> None:
    with pytest.raises(LambdaBuildError, match=r"over the limit of 1\.0 MB; the largest folders are: \w+"):
        build_lambda(tmp_path, max_unzipped_bytes=1_000_000)
    assert not (tmp_path / "orch-lambda.zip").exists()


@pytest.mark.unit
def test_a_missing_python_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LambdaBuildError, match=r"No Python 2\.1 found"):
        lambda_build.find_python("2.1")
