"""Where the Lambda code comes from: the package `orch build lambda` writes, never something made up here.

`orch build lambda` writes `dist/lambda/` (a folder) and `dist/orch-lambda.zip` at the repository root. The
`lambda_asset` context names either; without it the zip at the default place is used if it exists. A package is
accepted only if it holds the handler module `orch/control_plane/lambda_handlers` (as .py, .pyc or a package).

With no package at all the stack still synthesizes (for tests, reviews and `cdk diff`) from a placeholder folder
whose only file says the code was not built; `app.py` then prints a warning and adds an error annotation, which
makes `cdk deploy` refuse the stack.
"""

from __future__ import annotations

import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_ZIP", "AssetError", "LambdaAsset", "resolve_lambda_asset"]

DEFAULT_ZIP = Path("dist") / "orch-lambda.zip"
# The handler module as source, as a package, or sourceless (compileall -b puts the .pyc where the .py was;
# a copy under __pycache__ alone is not importable).
_HANDLER_NAMES = frozenset(
    f"orch/control_plane/{name}"
    for name in (
        "lambda_handlers.py",
        "lambda_handlers/__init__.py",
        "lambda_handlers.pyc",
        "lambda_handlers/__init__.pyc",
    )
)
_NOT_BUILT_TEXT = (
    "This is not orch's Lambda code. No package from `orch build lambda` was found when this stack was\n"
    "synthesized, so the functions point at this placeholder and cannot run. Run `orch build lambda`, then\n"
    "`cdk deploy -c lambda_asset=<repo>/dist/orch-lambda.zip`.\n"
)


class AssetError(ValueError):
    """The named Lambda package is missing or is not an orch Lambda package; one line, names the path."""


@dataclass(frozen=True)
class LambdaAsset:
    """A folder or zip for `lambda_.Code.from_asset`; `built` is False for the not-built placeholder."""

    path: Path
    built: bool


def _has_handler(names: set[str]) -> bool:
    return not _HANDLER_NAMES.isdisjoint(names)


def _check_package(path: Path) -> None:
    if path.is_dir():
        names = {p.relative_to(path).as_posix() for p in path.glob("orch/control_plane/**/*")}
        names |= {p.relative_to(path).as_posix() for p in path.glob("orch/control_plane/*")}
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    else:
        raise AssetError(f"lambda_asset {path}: neither a folder nor a zip file")
    if not _has_handler(names):
        raise AssetError(
            f"lambda_asset {path}: no orch/control_plane/lambda_handlers in it; build it with `orch build lambda`"
        )


def resolve_lambda_asset(value: str | None, repo_root: Path) -> LambdaAsset:
    """The package named by `value` (a path), else `<repo_root>/dist/orch-lambda.zip`, else the placeholder."""
    if value:
        path = Path(value).expanduser().resolve()
        if not path.exists():
            raise AssetError(f"lambda_asset {path}: does not exist; run `orch build lambda` first")
        _check_package(path)
        return LambdaAsset(path, built=True)
    default = repo_root / DEFAULT_ZIP
    if default.exists():
        _check_package(default)
        return LambdaAsset(default, built=True)
    # A fixed folder in the temp dir: the same content every time, so repeated synths do not pile up folders.
    placeholder = Path(tempfile.gettempdir()) / "orch-lambda-NOT-BUILT"
    placeholder.mkdir(exist_ok=True)
    (placeholder / "NOT_BUILT.txt").write_text(_NOT_BUILT_TEXT)
    return LambdaAsset(placeholder, built=False)
