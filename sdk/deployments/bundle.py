"""Bundling: the project folder as a deterministic, content-addressed zip.

The same tree always gives the same zip and the same hash: files are added in path order, with a fixed timestamp
(1980-01-01, the zip epoch), normalised permissions (0644, or 0755 for executables) and fixed compression; the
hash (:func:`orch.storage.content_digest`) is computed over paths, modes and file contents, so neither the clock,
the file system's order nor the zlib version changes it.

What goes in: every regular file under the folder except ``.git``, ``__pycache__`` and ``.venv`` folders (always)
and whatever ``.orchignore`` excludes, with gitignore syntax (``*.csv``, ``data/``, ``/build``, ``!keep.csv``).
Symbolic links are skipped: a link can point outside the project, and the engine unpacks plain files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import zipfile
from pathlib import Path

from orch.exceptions import ConfigurationError
from orch.storage import manifest_line

__all__ = ["ALWAYS_IGNORED", "IGNORE_FILE", "Bundle", "build_bundle", "project_files"]

IGNORE_FILE = ".orchignore"
ALWAYS_IGNORED = frozenset({".git", "__pycache__", ".venv"})
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclasses.dataclass(frozen=True)
class Bundle:
    path: Path
    sha256: str
    files: tuple[str, ...]
    size: int


def _ignore_spec(root: Path) -> object | None:
    ignore_file = root / IGNORE_FILE
    if not ignore_file.is_file():
        return None
    import pathspec

    try:
        lines = ignore_file.read_text().splitlines()
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigurationError(f"{IGNORE_FILE}: cannot read it: {exc}") from None


def project_files(root: Path) -> list[str]:
    """The project's files to bundle, as sorted POSIX paths relative to ``root``."""
    root = root.resolve()
    spec = _ignore_spec(root)
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        base = Path(folder).relative_to(root)
        kept_dirs = []
        for name in dirs:
            rel = (base / name).as_posix()
            if name in ALWAYS_IGNORED or (Path(folder) / name).is_symlink():
                continue
            if spec is not None and spec.match_file(rel + "/"):  # type: ignore[attr-defined]
                continue
            kept_dirs.append(name)
        dirs[:] = sorted(kept_dirs)
        for name in files:
            full = Path(folder) / name
            rel = (base / name).as_posix()
            if full.is_symlink() or not full.is_file():
                continue
            if spec is not None and spec.match_file(rel):  # type: ignore[attr-defined]
                continue
            found.append(rel)
    return sorted(found)


def _mode(path: Path) -> int:
    return 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644


def build_bundle(root: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Bundle:
    """Zip the project at ``root`` into ``dest`` (a file path) deterministically; returns its content hash."""
    base = Path(root).resolve()
    if not base.is_dir():
        raise ConfigurationError(f"Project folder {base} does not exist.")
    out = Path(dest)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = project_files(base)
    digest = hashlib.sha256()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for rel in files:
            path = base / rel
            data = path.read_bytes()
            mode = _mode(path)
            info = zipfile.ZipInfo(rel, date_time=_ZIP_EPOCH)
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the permissions above are honoured on every platform
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
            digest.update(manifest_line(rel, mode, hashlib.sha256(data).hexdigest()))
    return Bundle(out, digest.hexdigest(), tuple(files), out.stat().st_size)
