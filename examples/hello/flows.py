"""The example project: one flow, deployed by ``orch deploy`` from the orch.yaml next to this file.

Try it::

    cd examples/hello
    orch deploy                                   # bundles this folder, registers hello/nightly
    orch deployment run hello/nightly --param who=you
    orch deployment upcoming hello/nightly
"""

from __future__ import annotations

from orch import flow, get_run_logger, task


@task
def greeting(who: str, excited: bool) -> str:
    return f"Hello, {who}{'!' if excited else '.'}"


@flow(name="hello", retries=1)
def hello(who: str = "world", times: int = 1, excited: bool = False) -> list[str]:
    """Say hello ``times`` times."""
    logger = get_run_logger()
    lines = [greeting(who, excited) for _ in range(times)]
    for line in lines:
        logger.info(line)
    return lines


if __name__ == "__main__":
    hello()
