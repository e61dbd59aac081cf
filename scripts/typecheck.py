"""Type-check orch as the one ``orch`` namespace it is installed as.

The source lives in three folders (sdk/ → orch, control_plane/ → orch.control_plane, agents/ → orch.agents). mypy
cannot follow the editable install's import hook, so without help every ``orch.*`` import would silently become
``Any``. This script mirrors the tree as ``.typecheck/orch/...`` (one symlink per file), runs mypy on the mirror with
the settings in pyproject.toml, and prints the errors with the real source paths.

    .venv/bin/python scripts/typecheck.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIRROR = ROOT / ".typecheck"
SOURCES = {"sdk": Path("orch"), "control_plane": Path("orch/control_plane"), "agents": Path("orch/agents")}
SKIP_PARTS = {"__pycache__", "versions"}


def build_mirror() -> dict[str, str]:
    shutil.rmtree(MIRROR, ignore_errors=True)
    back: dict[str, str] = {}
    for folder, target in SOURCES.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder)
            if SKIP_PARTS & set(rel.parts) or any(p.startswith(".") for p in rel.parts):
                continue
            link = MIRROR / target / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, link)
            back[str(link.relative_to(ROOT))] = str(path.relative_to(ROOT))
        typed = ROOT / folder / "py.typed"
        if typed.exists():
            (MIRROR / target).mkdir(parents=True, exist_ok=True)
            os.symlink(typed, MIRROR / target / "py.typed")
    return back


def main() -> int:
    back = build_mirror()
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), str(MIRROR / "orch")]
    env = {**os.environ, "MYPYPATH": str(MIRROR)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    for mirrored, real in sorted(back.items(), key=lambda kv: -len(kv[0])):
        out = out.replace(mirrored, real)
    sys.stdout.write(out)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
