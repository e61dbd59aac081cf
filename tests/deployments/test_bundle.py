"""Bundles: deterministic, content-addressed zips of the project folder honouring .orchignore."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from orch.deployments.bundle import build_bundle, project_files
from orch.storage import content_digest, fetch_bundle

pytestmark = pytest.mark.unit


def _project(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "flows.py").write_text("print('hi')\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "util.py").write_text("X = 1\n")
    (root / "data").mkdir()
    (root / "data" / "big.csv").write_text("a,b\n")
    (root / "data" / "keep.csv").write_text("k\n")
    (root / "notes.log").write_text("log\n")
    for skipped in (".git", "__pycache__", ".venv", "pkg/__pycache__"):
        (root / skipped).mkdir(parents=True, exist_ok=True)
        (root / skipped / "junk").write_text("junk")
    return root


def test_always_skipped_folders(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    assert project_files(root) == [
        "data/big.csv",
        "data/keep.csv",
        "flows.py",
        "notes.log",
        "pkg/__init__.py",
        "pkg/util.py",
    ]


def test_orchignore_uses_gitignore_patterns(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (root / ".orchignore").write_text("# comment\n*.log\ndata/*.csv\n!data/keep.csv\n/pkg/util.py\n")
    assert project_files(root) == [".orchignore", "data/keep.csv", "flows.py", "pkg/__init__.py"]
    (root / ".orchignore").write_text("data/\n")
    assert "data/keep.csv" not in project_files(root)


def test_same_tree_same_hash_and_bytes(tmp_path: Path) -> None:
    first = _project(tmp_path / "a")
    second = _project(tmp_path / "b")
    # Different modification times and creation order must not matter.
    os.utime(second / "flows.py", (1_000_000, 1_000_000))
    one = build_bundle(first, tmp_path / "one.zip")
    two = build_bundle(second, tmp_path / "two.zip")
    assert one.sha256 == two.sha256
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    assert content_digest((tmp_path / "one.zip").read_bytes()) == one.sha256
    (second / "pkg" / "util.py").write_text("X = 2\n")
    assert build_bundle(second, tmp_path / "three.zip").sha256 != one.sha256
    (second / "pkg" / "util.py").write_text("X = 1\n")
    (second / "flows.py").chmod(0o755)  # the mode is part of the content
    assert build_bundle(second, tmp_path / "four.zip").sha256 != one.sha256


def test_zip_entries_are_normalised(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    build_bundle(root, tmp_path / "b.zip")
    with zipfile.ZipFile(tmp_path / "b.zip") as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} == {0o644}


def test_fetch_unpacks_and_checks_the_hash(tmp_path: Path) -> None:
    from orch.storage import BundleError, BundleStorage

    root = _project(tmp_path / "p")
    bundle = build_bundle(root, tmp_path / "b.zip")
    storage = BundleStorage(tmp_path / "store")
    ref = storage.put_bundle(bundle.path, sha256=bundle.sha256)
    dest = fetch_bundle(ref.to_json(), tmp_path / "run")
    assert (dest / "pkg" / "util.py").read_text() == "X = 1\n"
    assert not (dest / ".git").exists()
    # Tampered content is refused.
    (tmp_path / "store" / ref.key).write_bytes((tmp_path / "b.zip").read_bytes()[:-10] + b"0" * 10)
    with pytest.raises(BundleError):
        fetch_bundle(ref.to_json(), tmp_path / "other")
    with pytest.raises(BundleError, match="not in"):
        fetch_bundle({**ref.to_json(), "sha256": "0" * 64, "key": "bundle-missing.zip"}, tmp_path / "x")
