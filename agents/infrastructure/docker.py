"""The Docker launcher: the engine in a container, through the Docker Engine API (the ``docker`` SDK).

For each run the agent creates and starts one container running ``python -m orch.engine RUN_ID``:

- image: the deployment's ``infra_overrides.image``, else ``ORCH_DOCKER_IMAGE`` (default ``orch/orch:<version>``);
  pulled when the engine does not have it (a failed pull makes the run ``Crashed`` with Docker's reason);
- environment: the run's (``ORCH_API_URL``, ``ORCH_API_KEY``, ``ORCH_FLOW_RUN_ID``) plus ``infra_overrides.env``.
  The API URL must be reachable *from the container*: ``127.0.0.1`` is the container itself, so use the host's
  address, ``host.docker.internal`` or ``network: host``;
- ``network`` (``ORCH_DOCKER_NETWORK``), ``volumes`` (``["/host:/container:ro", ...]``), ``auto_remove``,
  ``mem_limit`` and ``working_dir`` from ``infra_overrides``;
- labels ``orch.flow-run-id`` and ``orch.deployment-id``, so ``docker ps --filter label=orch.flow-run-id=...``
  finds a run's container.

The container's stdout/stderr are followed and forwarded to the run's logs like the process launcher's output.
Its exit code is the engine's (0 Completed, 1 Failed/Cancelled, 3 Crashed); an OOM kill or a Docker error is in
the ``ExitStatus`` reason. Cancellation stops the container (``SIGTERM``, then ``SIGKILL`` after the grace
period). Unless ``auto_remove`` is set, the agent removes the container once it has its exit code and its logs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

from orch.agents.infrastructure import ExitStatus, LaunchRequest
from orch.agents.infrastructure._output import LogSink, OutputShipper
from orch.agents.settings import AgentSettings, get_agent_settings
from orch.exceptions import InfrastructureError

logger = logging.getLogger("orch.agents.docker")

RUN_LABEL = "orch.flow-run-id"
DEPLOYMENT_LABEL = "orch.deployment-id"
# Variables that only make sense on the agent's host.
HOST_ONLY_ENV = ("ORCH_HOME",)


@dataclasses.dataclass
class DockerHandle:
    ident: str  # the container id
    container: Any
    auto_remove: bool
    output: OutputShipper
    waiter: threading.Thread
    pumps: list[threading.Thread]
    result: dict[str, Any] = dataclasses.field(default_factory=dict)


class DockerInfrastructure:
    kind = "docker"

    def __init__(
        self,
        *,
        log_sink: LogSink | None = None,
        client: Any = None,
        settings: AgentSettings | None = None,
        **_: Any,
    ) -> None:
        import docker

        self.log_sink = log_sink
        self.settings = settings or get_agent_settings()
        try:
            if client is not None:
                self.client = client
            elif self.settings.docker_host:
                self.client = docker.DockerClient(base_url=self.settings.docker_host)
            else:
                self.client = docker.from_env()
        except docker.errors.DockerException as exc:
            raise InfrastructureError(f"Cannot reach the Docker engine: {exc}") from None

    # -- launch ------------------------------------------------------------------------------------------------------

    def image_for(self, request: LaunchRequest) -> str:
        return str(request.overrides.get("image") or self.settings.docker_image)

    def launch(self, request: LaunchRequest) -> DockerHandle:
        import docker

        overrides = request.overrides
        image = self.image_for(request)
        env = {k: v for k, v in request.env.items() if k not in HOST_ONLY_ENV}
        env.update({k: str(v) for k, v in (overrides.get("env") or {}).items()})
        labels = {RUN_LABEL: request.run_id}
        if request.deployment is not None and request.deployment.get("id"):
            labels[DEPLOYMENT_LABEL] = str(request.deployment["id"])
        auto_remove = bool(overrides.get("auto_remove", self.settings.docker_auto_remove))
        self._ensure_image(image)
        try:
            container = self.client.containers.create(
                image,
                command=request.command,
                environment=env,
                labels=labels,
                name=f"orch-run-{request.run_id}",
                network=overrides.get("network") or self.settings.docker_network,
                volumes=list(overrides.get("volumes") or []) or None,
                working_dir=overrides.get("working_dir"),
                mem_limit=overrides.get("mem_limit"),
                auto_remove=auto_remove,
                detach=True,
            )
        except docker.errors.APIError as exc:
            raise InfrastructureError(f"Docker could not create the container: {_explain(exc)}") from None
        result: dict[str, Any] = {}
        # Wait before starting (as `docker run` does): the exit code is caught even if the container is removed.
        waiter = threading.Thread(
            target=self._wait, args=(container, result), name=f"orch-wait-{container.short_id}", daemon=True
        )
        waiter.start()
        try:
            container.start()
        except docker.errors.APIError as exc:
            self._remove(container)
            raise InfrastructureError(f"Docker could not start the container: {_explain(exc)}") from None
        output = OutputShipper(self.log_sink, request.run_id, "docker")
        pumps = []
        for stream in ("stdout", "stderr"):
            pump = threading.Thread(
                target=self._pump,
                args=(container, output, stream),
                name=f"orch-{stream}-{container.short_id}",
                daemon=True,
            )
            pump.start()
            pumps.append(pump)
        return DockerHandle(container.id, container, auto_remove, output, waiter, pumps, result)

    def _ensure_image(self, image: str) -> None:
        import docker
        from docker.utils import parse_repository_tag

        try:
            self.client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            raise InfrastructureError(f"Docker could not look up image {image}: {_explain(exc)}") from None
        repository, tag = parse_repository_tag(image)
        logger.info("pulling image %s", image)
        try:
            self.client.images.pull(repository, tag=tag or "latest")
        except docker.errors.APIError as exc:
            raise InfrastructureError(f"Docker could not pull image {image}: {_explain(exc)}") from None

    @staticmethod
    def _wait(container: Any, result: dict[str, Any]) -> None:
        try:
            answer = container.wait(condition="next-exit")
            result["code"] = int(answer.get("StatusCode", -1))
            error = (answer.get("Error") or {}).get("Message")
            if error:
                result["error"] = error
        except Exception as exc:
            result["error"] = f"lost track of the container: {exc}"

    @staticmethod
    def _pump(container: Any, output: OutputShipper, stream: str) -> None:
        # One follow stream per pipe keeps stdout and stderr apart (stderr lines become WARNING logs).
        try:
            for chunk in container.logs(stdout=stream == "stdout", stderr=stream == "stderr", stream=True, follow=True):
                output.feed(chunk, stream)
        except Exception as exc:
            logger.debug("log stream of %s ended: %s", container.short_id, exc)

    # -- watch, stop -------------------------------------------------------------------------------------------------

    def poll(self, handle: DockerHandle) -> ExitStatus | None:
        if handle.waiter.is_alive():
            return None
        for pump in handle.pumps:
            pump.join(timeout=5)
        handle.output.flush(final=True)
        code = handle.result.get("code")
        reason = f"the container exited with code {code}" if code is not None else "the container stopped"
        if code == 137:
            reason += " (killed: out of memory or stopped by force)"
        if handle.result.get("error"):
            reason += f": {handle.result['error']}"
        if not handle.auto_remove:
            self._remove(handle.container)
        return ExitStatus(code, reason)

    def kill(self, handle: DockerHandle, grace_seconds: float = 10.0) -> None:
        import docker

        try:
            handle.container.stop(timeout=int(grace_seconds))
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            logger.warning("could not stop container %s: %s", handle.container.short_id, _explain(exc))
        handle.waiter.join(timeout=grace_seconds + 5)
        for pump in handle.pumps:
            pump.join(timeout=5)
        handle.output.flush(final=True)
        if not handle.auto_remove:
            self._remove(handle.container)

    @staticmethod
    def _remove(container: Any) -> None:
        import docker

        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            logger.warning("could not remove container %s: %s", container.short_id, _explain(exc))

    def close(self) -> None:
        self.client.close()


def _explain(exc: Any) -> str:
    return str(getattr(exc, "explanation", None) or exc)
