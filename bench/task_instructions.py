"""Per-task cost of orch in instructions (valgrind's callgrind), printed as JSON: a measure this VM's speed swings do
not move, to compare two versions of the code where ``task_overhead.py``'s wall clock cannot.

For N trivial tasks called directly inside one flow, in the embedded mode (SDK, recorder, in-process API app and
SQLite; every thread of the process), the figure is::

    (instructions of a process running R flows of N tasks - instructions of the same process running R flows of
     0 tasks) / (N * R)

so the imports, the warm-up and the flows themselves cancel out. Instructions are not time (cache misses and
thread switches are not counted), but for the same machine and interpreter fewer instructions is less work.
Needs ``valgrind`` (Debian: ``apt-get install valgrind``); a run takes a few minutes::

    python bench/task_instructions.py [--tasks 1000] [--flows 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import os, sys
from orch import flow, task

@task
def inc(x: int) -> int:
    return x + 1

@flow
def direct(n: int) -> None:
    for i in range(n):
        inc(i)

direct(10)
for _ in range(int(sys.argv[2])):
    direct(int(sys.argv[1]))
"""


def _instructions(script: Path, tasks: int, flows: int, home: Path) -> int:
    out = home / f"callgrind.{tasks}"
    env = {**os.environ, "ORCH_HOME": str(home / f"home{tasks}"), "PYTHONHASHSEED": "0"}
    env.pop("ORCH_API_URL", None)
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, str(script)]
    subprocess.run([*command, str(tasks), str(flows)], env=env, check=True, capture_output=True)
    summary = re.search(r"^summary:\s*(\d+)", out.read_text(), re.MULTILINE)
    if summary is None:
        raise RuntimeError(f"no summary line in {out}")
    return int(summary.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per flow (N)")
    parser.add_argument("--flows", type=int, default=3, help="flows measured (R)")
    args = parser.parse_args()
    if args.tasks < 1 or args.flows < 1:
        parser.error("--tasks and --flows must be at least 1")
    if shutil.which("valgrind") is None:
        print("task_instructions.py needs valgrind (apt-get install valgrind)", file=sys.stderr)
        sys.exit(2)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        script = home / "child.py"
        script.write_text(_CHILD)
        empty = _instructions(script, 0, args.flows, home)
        full = _instructions(script, args.tasks, args.flows, home)
    print(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "tasks_per_flow": args.tasks,
                "flows": args.flows,
                "instructions_per_task": round((full - empty) / (args.tasks * args.flows)),
            }
        )
    )


if __name__ == "__main__":
    main()
