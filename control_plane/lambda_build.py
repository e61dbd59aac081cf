"""Build the AWS Lambda deployment zip of the control plane (``orch build lambda``).

The serverless control plane (``infra/terraform``, ``infra/cdk``) runs four Lambda functions from one zip.
This module produces that zip on any machine, without Docker:

1. **Dependencies.** orch's runtime requirements are read from the installed distribution's metadata (extras
   excluded) and installed with ``pip install --target`` for the Lambda platform (``manylinux2014_aarch64``,
   CPython 3.12, wheels only), so no wheel built for the build machine ends up in the zip. The wheels are kept
   in a wheelhouse under ``~/.cache/orch-lambda-build``: a repeated build installs from it without the network
   (and so with the same versions) until ``refresh=True`` or a requirement it cannot satisfy.
2. **orch itself.** The one ``orch`` import namespace comes from three source folders (``sdk/`` -> ``orch``,
   ``control_plane/`` -> ``orch.control_plane``, ``agents/`` -> ``orch.agents``); they are copied into the
   same layout Python sees when orch is installed.
3. **Pruning.** Console scripts, test folders and bytecode compiled by another interpreter are removed.
   boto3/botocore are *kept* although the Lambda runtime ships them: the runtime's copy lags behind and
   changes without notice, and our AWS adapters are tested against the version we pin (AWS recommends bundling
   the SDK for production functions). It costs about a quarter of the unzipped size, well within the limit.
4. **Bytecode.** Lambda's code folder is read-only, so Python cannot write ``__pycache__`` at cold start and
   would compile every module on every cold start. The build compiles everything with a CPython 3.12
   interpreter into ``__pycache__/*.cpython-312.pyc`` (sources kept, for tracebacks), using unchecked-hash
   pycs: they do not embed file modification times (so the build is reproducible) and are not re-validated at
   import (the code never changes under a deployed function).
5. **Zip.** Entries in sorted order with a fixed timestamp and fixed permissions, so the same staging folder
   always gives byte-identical zips (and Terraform/CDK see no change when nothing changed). The unzipped size
   is checked against Lambda's 250 MB limit before the zip is written.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

from orch.exceptions import OrchError

__all__ = [
    "LAMBDA_UNUSED_EXTRAS",
    "LAMBDA_UNZIPPED_LIMIT",
    "BuildReport",
    "LambdaBuildError",
    "build_lambda",
    "find_python",
    "main",
    "runtime_requirements",
    "source_folder",
]

#: Lambda's limit for the unzipped deployment package (function code plus layers): 250 MiB.
LAMBDA_UNZIPPED_LIMIT = 262_144_000

#: Where orch's three source folders go inside the zip (import name -> folder relative to the zip root).
ORCH_PACKAGES: dict[str, str] = {
    "orch": "orch",
    "orch.control_plane": "orch/control_plane",
    "orch.agents": "orch/agents",
}

#: Extras of orch's requirements that only the long-running server uses. On Lambda the API is served through
#: Mangum, so uvicorn's fast event loop, HTTP parser, file watcher and WebSocket stack (~22 MB) never load.
LAMBDA_UNUSED_EXTRAS: dict[str, frozenset[str]] = {"uvicorn": frozenset({"standard"})}

#: Folder names removed from installed dependencies: test suites are never imported by the handlers.
_PRUNED_DIRS = frozenset({"tests", "test", "testing_data"})
#: 1980-01-01, the earliest timestamp a zip entry can hold; every entry gets it so builds are reproducible.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_DEFAULT_CACHE = Path("~/.cache/orch-lambda-build").expanduser()


class LambdaBuildError(OrchError):
    """The Lambda package could not be built (pip failed, no Python 3.12, or the package is too large)."""


@dataclass(frozen=True)
class BuildReport:
    """What a build produced."""

    zip_path: Path
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.zip_path}: {self.zipped_bytes / 1e6:.1f} MB zipped, "
            f"{self.unzipped_bytes / 1e6:.1f} MB unzipped, {self.files} files, {self.seconds:.0f} s"
        )


def runtime_requirements(
    distribution: str = "orch", *, python_version: str = "3.12", platform: str = "manylinux2014_aarch64"
) -> list[str]:
    """The distribution's requirements without extras, with markers evaluated for the Lambda runtime."""
    environment = _target_environment(python_version, platform)
    requirements: list[str] = []
    for line in importlib.metadata.requires(distribution) or []:
        requirement = Requirement(line)
        if requirement.marker is not None:
            # A marker mentioning `extra` belongs to an optional extra; evaluating it with extra="" drops it.
            if not requirement.marker.evaluate({**environment, "extra": ""}):
                continue
            requirement.marker = None
        requirement.extras -= LAMBDA_UNUSED_EXTRAS.get(requirement.name.lower(), frozenset())
        requirements.append(str(requirement))
    return requirements


def _target_environment(python_version: str, platform: str) -> dict[str, str]:
    environment = {key: str(value) for key, value in default_environment().items()}
    machine = "aarch64" if "aarch64" in platform else "x86_64"
    environment.update(
        python_version=python_version,
        python_full_version=f"{python_version}.0",
        implementation_name="cpython",
        platform_python_implementation="CPython",
        sys_platform="linux",
        os_name="posix",
        platform_system="Linux",
        platform_machine=machine,
    )
    return environment


def find_python(version: str = "3.12") -> Path:
    """A CPython interpreter of ``version`` to compile bytecode with: PATH first, then pyenv's versions."""
    candidates: list[Path] = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(Path(on_path))
    pyenv_root = Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser()
    candidates.extend(sorted((pyenv_root / "versions").glob(f"{version}.*/bin/python{version}"), reverse=True))
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        candidates.append(Path(sys.executable))
    for candidate in candidates:
        # A pyenv shim is on PATH even when that version is not activated; ask each candidate what it is.
        if candidate.is_file() and _python_version(candidate) == version:
            return candidate
    raise LambdaBuildError(
        f"No Python {version} found (looked on PATH for python{version} and in {pyenv_root}/versions); "
        f"install CPython {version} to compile the Lambda package's bytecode."
    )


def _python_version(interpreter: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(interpreter), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def build_lambda(
    out_dir: Path,
    *,
    python_version: str = "3.12",
    platform: str = "manylinux2014_aarch64",
    progress: Callable[[str], None] | None = None,
    max_unzipped_bytes: int = LAMBDA_UNZIPPED_LIMIT,
    cache_dir: Path | None = None,
    sources: Mapping[str, Path] | None = None,
    refresh: bool = False,
) -> BuildReport:
    """Build ``out_dir/lambda/`` (staging) and ``out_dir/orch-lambda.zip``; see the module docstring.

    ``sources`` maps the import names of :data:`ORCH_PACKAGES` to the folders to copy them from; by default
    they are the folders the installed orch is imported from. ``refresh`` downloads the newest wheels that
    satisfy the requirements even when the wheelhouse could satisfy them already.
    """
    say = progress or (lambda _message: None)
    started = time.monotonic()
    out_dir = Path(out_dir)
    staging = out_dir / "lambda"
    zip_path = out_dir / "orch-lambda.zip"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    cache = Path(cache_dir) if cache_dir is not None else _DEFAULT_CACHE
    interpreter = find_python(python_version)

    requirements = runtime_requirements(python_version=python_version, platform=platform)
    say(f"Installing {len(requirements)} requirements for {platform}, CPython {python_version}")
    _pip_install(requirements, staging, python_version=python_version, platform=platform, cache=cache, refresh=refresh)

    say("Copying orch")
    for name, target in ORCH_PACKAGES.items():
        source = Path(sources[name]) if sources and name in sources else source_folder(name)
        _copy_package(source, staging / target)

    say("Pruning files Lambda does not need")
    _prune(staging)

    # Checked before compiling too: a package whose sources alone are too large fails without the wait.
    _check_size(staging, max_unzipped_bytes)
    say(f"Compiling bytecode with {interpreter}")
    _compile(staging, interpreter)
    files, unzipped = _check_size(staging, max_unzipped_bytes)

    say(f"Writing {zip_path}")
    _write_zip(zip_path, staging, files)
    report = BuildReport(
        zip_path=zip_path,
        zipped_bytes=zip_path.stat().st_size,
        unzipped_bytes=unzipped,
        files=len(files),
        seconds=time.monotonic() - started,
    )
    say(report.summary())
    return report


def main(out: Path = Path("dist")) -> BuildReport:
    """Entry point for ``orch build lambda [--out dist/]``: build and print progress to stderr."""
    return build_lambda(out, progress=lambda message: print(message, file=sys.stderr))


def _pip_install(
    requirements: list[str], target: Path, *, python_version: str, platform: str, cache: Path, refresh: bool
) -> None:
    """Install from a wheelhouse of Lambda-platform wheels; download into it only what it lacks (or on refresh).

    A plain pip cache would not do: resolving against the index fetches every project's page (megabytes each)
    on every build. With the wheelhouse a repeated build does not touch the network at all.
    """
    wheelhouse = cache / "wheels" / f"{platform}-cp{python_version.replace('.', '')}"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    quiet = ["--quiet", "--disable-pip-version-check", "--no-input"]
    platform_options = [
        "--platform",
        platform,
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--only-binary=:all:",
    ]
    install = [
        *pip,
        "install",
        *quiet,
        "--no-index",
        "--find-links",
        str(wheelhouse),
        "--target",
        str(target),
        *platform_options,
        # The pycs pip would write come from the build machine's interpreter; we compile for 3.12 ourselves.
        "--no-compile",
        *requirements,
    ]
    if not refresh and _run(install).returncode == 0:
        return
    # The wheelhouse lacked something: fill it from the index, then install from it into a clean target.
    shutil.rmtree(target)
    target.mkdir()
    download = _run([*pip, "download", *quiet, "--dest", str(wheelhouse), *platform_options, *requirements])
    if download.returncode != 0:
        raise LambdaBuildError("pip could not download the Lambda dependencies:\n" + _tail(download))
    installed = _run(install)
    if installed.returncode != 0:
        raise LambdaBuildError("pip could not install the Lambda dependencies:\n" + _tail(installed))


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _tail(result: subprocess.CompletedProcess[str], lines: int = 5) -> str:
    return "\n".join((result.stderr or result.stdout).strip().splitlines()[-lines:])


def source_folder(name: str) -> Path:
    """The folder package ``name`` of the installed orch is imported from."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise LambdaBuildError(f"Cannot find the source folder of package {name!r}; is orch installed?")
    # An editable install adds a path-hook entry that is not a folder; the source folder is the one on disk.
    for location in spec.submodule_search_locations:
        if Path(location).is_dir():
            return Path(location)
    raise LambdaBuildError(f"Package {name!r} has no source folder on disk.")


def _copy_package(source: Path, target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "tests")
    shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)


def _prune(staging: Path) -> None:
    # Console scripts carry the build machine's interpreter path in their shebang; Lambda never runs them.
    shutil.rmtree(staging / "bin", ignore_errors=True)
    for path in sorted(staging.rglob("*"), reverse=True):
        if not path.exists():
            continue
        if path.is_dir() and (path.name == "__pycache__" or (path.name in _PRUNED_DIRS and _inside_package(path))):
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in (".pyc", ".pyo"):
            path.unlink()


def _inside_package(path: Path) -> bool:
    """True for a folder nested in a package (never a top-level distribution called e.g. `test`)."""
    return (path.parent / "__init__.py").is_file()


def _compile(staging: Path, interpreter: Path) -> None:
    command = [
        str(interpreter),
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
        # Record the path the code has on Lambda (/var/task), not the build machine's staging folder.
        "-s",
        str(staging),
        "-p",
        "/var/task",
        str(staging),
    ]
    # A fixed hash seed keeps anything hash-ordered that reaches a code object in the same order on every build.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    # compileall exits 1 when a file does not compile; some packages ship Python 2 examples: harmless.
    if result.returncode not in (0, 1):
        raise LambdaBuildError(f"compileall failed: {(result.stderr or result.stdout).strip()[-500:]}")


def _check_size(staging: Path, limit: int) -> tuple[list[Path], int]:
    files = sorted(path for path in staging.rglob("*") if path.is_file())
    unzipped = sum(path.stat().st_size for path in files)
    if unzipped > limit:
        raise LambdaBuildError(
            f"The Lambda package is {unzipped / 1e6:.1f} MB unzipped, over the limit of {limit / 1e6:.1f} MB; "
            f"the largest folders are: {_largest(staging)}"
        )
    return files, unzipped


def _largest(staging: Path, count: int = 5) -> str:
    sizes = {
        child.name: sum(f.stat().st_size for f in child.rglob("*") if f.is_file())
        for child in staging.iterdir()
        if child.is_dir()
    }
    ranked = sorted(sizes.items(), key=lambda item: item[1], reverse=True)[:count]
    return ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in ranked)


def _write_zip(zip_path: Path, staging: Path, files: Iterable[Path]) -> None:
    partial = zip_path.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(staging).as_posix(), date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            # Regular file, rw-r--r--: Lambda only needs to read the code; no build-machine modes leak in.
            info.external_attr = (0o100644 & 0xFFFF) << 16
            with path.open("rb") as source, archive.open(info, "w") as target:
                shutil.copyfileobj(source, target, 1024 * 1024)
    partial.replace(zip_path)
