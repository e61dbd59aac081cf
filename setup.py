"""Package discovery for the three source folders that make up the ``orch`` import namespace.

All other metadata lives in pyproject.toml. Every folder with an ``__init__.py`` under ``sdk/`` becomes a package
under ``orch``, under ``control_plane/`` one under ``orch.control_plane``, under ``agents/`` one under
``orch.agents`` — so adding a subpackage never needs a packaging change.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
SOURCES = {"orch": "sdk", "orch.control_plane": "control_plane", "orch.agents": "agents"}


def _discover() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for name, folder in SOURCES.items():
        base = ROOT / folder
        package_dir[name] = folder
        for init in sorted(base.rglob("__init__.py")):
            rel = init.parent.relative_to(base)
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            packages.append(".".join((name, *rel.parts)) if rel.parts else name)
    return packages, package_dir


_packages, _package_dir = _discover()
setup(packages=_packages, package_dir=_package_dir)
