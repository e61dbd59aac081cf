"""A fake Docker Engine API on loopback that really runs each container's command as a local process.

This is a fake because no Docker engine can run on this machine (no daemon, no privileges for one). It answers the
part of the Engine HTTP API (v1.45) that the ``docker`` SDK calls for the orch Docker launcher, so the launcher and
the real SDK run unchanged against ``docker.DockerClient(base_url="tcp://127.0.0.1:PORT")``:

    GET/HEAD /_ping, GET /version
    GET /images/{name}/json, POST /images/create (pull; names in ``pullable`` succeed, others answer 404 the way
        Docker Hub's "pull access denied" does)
    POST /containers/create, POST /containers/{id}/start, GET /containers/{id}/json,
    POST /containers/{id}/wait, GET /containers/{id}/logs (multiplexed stream, follow), POST /containers/{id}/stop,
    POST /containers/{id}/kill, DELETE /containers/{id}

A started container is its ``Cmd`` as a subprocess (``python`` mapped to this interpreter, standing in for the
image's Python with orch installed) with exactly the container's ``Env`` plus ``PATH``, and a private ``HOME`` and
working directory, in its own process group. stdout/stderr are kept as Docker keeps them, exit codes follow
Docker's convention (128 + signal). Images, networks and volumes are bookkeeping only; ``Binds`` and
``NetworkMode`` are recorded for assertions.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_VERSION = "1.45"


class FakeContainer:
    def __init__(self, cid: str, name: str, config: dict[str, Any]) -> None:
        self.id = cid
        self.name = name
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.frames: list[tuple[int, bytes]] = []  # (1 stdout | 2 stderr, data)
        self.status = "created"
        self.exit_code = 0
        self.removed = False
        self.cond = threading.Condition()
        self.home = tempfile.mkdtemp(prefix=f"fake-container-{cid[:12]}-")
        self.readers: list[threading.Thread] = []

    def inspect(self) -> dict[str, Any]:
        host = self.config.get("HostConfig") or {}
        return {
            "Id": self.id,
            "Name": f"/{self.name}",
            "Image": f"sha256:{abs(hash(self.config.get('Image'))):064x}"[:71],
            "Config": {
                "Image": self.config.get("Image"),
                "Cmd": self.config.get("Cmd"),
                "Env": self.config.get("Env") or [],
                "Labels": self.config.get("Labels") or {},
                "Tty": False,
                "WorkingDir": self.config.get("WorkingDir") or "",
            },
            "HostConfig": host,
            "State": {
                "Status": self.status,
                "Running": self.status == "running",
                "ExitCode": self.exit_code,
                "OOMKilled": False,
                "Error": "",
                "Pid": self.proc.pid if self.proc and self.status == "running" else 0,
            },
        }


class FakeDockerEngine:
    """The engine's state plus the HTTP server; ``with FakeDockerEngine(...) as engine: engine.base_url``."""

    def __init__(self, *, images: set[str] | None = None, pullable: set[str] | None = None) -> None:
        self.images: set[str] = set(images or ())
        self.pullable: set[str] = set(pullable or ())
        self.containers: dict[str, FakeContainer] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-docker", daemon=True)

    @property
    def base_url(self) -> str:
        return f"tcp://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeDockerEngine:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        for container in list(self.containers.values()):
            self._signal(container, signal.SIGKILL)
            shutil.rmtree(container.home, ignore_errors=True)
        self.server.shutdown()
        self.server.server_close()

    # -- containers ----------------------------------------------------------------------------------------------

    def find(self, ref: str) -> FakeContainer | None:
        with self.lock:
            for container in self.containers.values():
                if container.id.startswith(ref) or container.name == ref.lstrip("/"):
                    return container
        return None

    def start(self, container: FakeContainer) -> None:
        cmd = list(container.config.get("Cmd") or [])
        if cmd and cmd[0] in ("python", "python3"):
            cmd[0] = sys.executable
        env = dict(item.split("=", 1) for item in container.config.get("Env") or [] if "=" in item)
        env.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
        env.setdefault("HOME", container.home)
        cwd = container.config.get("WorkingDir") or container.home
        container.proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        container.status = "running"
        for kind, pipe in ((1, container.proc.stdout), (2, container.proc.stderr)):
            reader = threading.Thread(target=self._read, args=(container, kind, pipe), daemon=True)
            reader.start()
            container.readers.append(reader)
        threading.Thread(target=self._reap, args=(container,), daemon=True).start()

    @staticmethod
    def _read(container: FakeContainer, kind: int, pipe: Any) -> None:
        for chunk in iter(lambda: pipe.read1(65536), b""):
            with container.cond:
                container.frames.append((kind, chunk))
                container.cond.notify_all()

    def _reap(self, container: FakeContainer) -> None:
        assert container.proc is not None
        code = container.proc.wait()
        for reader in container.readers:
            reader.join()
        with container.cond:
            container.exit_code = 128 - code if code < 0 else code
            container.status = "exited"
            container.cond.notify_all()
        if (container.config.get("HostConfig") or {}).get("AutoRemove"):
            time.sleep(0.05)
            self.remove(container)

    def remove(self, container: FakeContainer) -> None:
        with self.lock:
            self.containers.pop(container.id, None)
        with container.cond:
            container.removed = True
            container.cond.notify_all()
        shutil.rmtree(container.home, ignore_errors=True)

    @staticmethod
    def _signal(container: FakeContainer, sig: int) -> None:
        if container.proc is not None and container.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(container.proc.pid, sig)

    def stop(self, container: FakeContainer, grace: float) -> None:
        self._signal(container, signal.SIGTERM)
        with container.cond:
            container.cond.wait_for(lambda: container.status != "running", timeout=grace)
        self._signal(container, signal.SIGKILL)
        with container.cond:
            container.cond.wait_for(lambda: container.status != "running", timeout=10)


def _handler_for(engine: FakeDockerEngine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection, bodies end at close: simple streaming

        def log_message(self, *_: Any) -> None:
            return

        # -- plumbing --

        def _route(self) -> tuple[str, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            path = re.sub(r"^/v\d+\.\d+", "", unquote(parts.path))
            return path, parse_qs(parts.query)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw else None

        def _json(self, status: int, payload: Any = None) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Api-Version", API_VERSION)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._json(status, {"message": message})

        def _container(self, ref: str) -> FakeContainer | None:
            container = engine.find(ref)
            if container is None:
                self._error(404, f"No such container: {ref}")
            return container

        # -- verbs --

        def do_HEAD(self) -> None:
            self._json(200)

        def do_GET(self) -> None:
            path, query = self._route()
            engine.requests.append(("GET", path))
            if path == "/_ping":
                data = b"OK"
                self.send_response(200)
                self.send_header("Api-Version", API_VERSION)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(data)
            elif path == "/version":
                self._json(
                    200,
                    {
                        "Version": "26.1.0-fake",
                        "ApiVersion": API_VERSION,
                        "MinAPIVersion": "1.24",
                        "Os": "linux",
                        "Arch": "amd64",
                    },
                )
            elif m := re.fullmatch(r"/images/(.+)/json", path):
                name = m.group(1)
                if name in engine.images or f"{name}:latest" in engine.images:
                    digest = uuid.uuid5(uuid.NAMESPACE_URL, name).hex * 2
                    self._json(200, {"Id": f"sha256:{digest}", "RepoTags": [name]})
                else:
                    self._error(404, f"No such image: {name}")
            elif m := re.fullmatch(r"/containers/([^/]+)/json", path):
                if container := self._container(m.group(1)):
                    with container.cond:
                        self._json(200, container.inspect())
            elif m := re.fullmatch(r"/containers/([^/]+)/logs", path):
                if container := self._container(m.group(1)):
                    self._logs(container, query)
            else:
                self._error(404, f"page not found: GET {path}")

        def _logs(self, container: FakeContainer, query: dict[str, list[str]]) -> None:
            def flag(name: str) -> bool:
                return query.get(name, ["0"])[0] in ("1", "true", "True")

            wanted = {1} if flag("stdout") else set()
            if flag("stderr"):
                wanted.add(2)
            follow = flag("follow")
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.docker.multiplexed-stream")
            self.send_header("Api-Version", API_VERSION)
            self.end_headers()
            sent = 0
            while True:
                with container.cond:
                    if follow:
                        container.cond.wait_for(
                            lambda seen=sent: len(container.frames) > seen or container.status != "running",  # type: ignore[misc]
                            timeout=1,
                        )
                    frames = container.frames[sent:]
                    done = not follow or container.status != "running"
                sent += len(frames)
                for kind, data in frames:
                    if kind in wanted:
                        self.wfile.write(struct.pack(">BxxxL", kind, len(data)) + data)
                self.wfile.flush()
                if done and sent == len(container.frames):
                    return

        def do_POST(self) -> None:
            path, query = self._route()
            engine.requests.append(("POST", path))
            body = self._body()
            if path == "/images/create":
                image = query.get("fromImage", [""])[0]
                tag = query.get("tag", ["latest"])[0] or "latest"
                name = f"{image}:{tag}"
                if name not in engine.pullable:
                    self._error(
                        404,
                        f"pull access denied for {image}, repository does not exist or may require 'docker login'",
                    )
                    return
                engine.images.add(name)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                for status in (f"Pulling from {image}", f"Digest: sha256:{'0' * 64}", "Downloaded newer image"):
                    self.wfile.write(json.dumps({"status": status}).encode() + b"\r\n")
            elif path == "/containers/create":
                config = body or {}
                image = config.get("Image", "")
                if image not in engine.images:
                    self._error(404, f"No such image: {image}")
                    return
                name = query.get("name", [""])[0] or f"fake_{uuid.uuid4().hex[:8]}"
                if engine.find(name) is not None:
                    self._error(409, f'Conflict. The container name "/{name}" is already in use')
                    return
                cid = uuid.uuid4().hex + uuid.uuid4().hex
                with engine.lock:
                    engine.containers[cid] = FakeContainer(cid, name, config)
                self._json(201, {"Id": cid, "Warnings": []})
            elif m := re.fullmatch(r"/containers/([^/]+)/(start|wait|stop|kill)", path):
                container = self._container(m.group(1))
                if container is None:
                    return
                action = m.group(2)
                if action == "start":
                    if container.status == "running":
                        self._json(304)
                    else:
                        engine.start(container)
                        self._json(204)
                elif action == "wait":
                    condition = query.get("condition", ["not-running"])[0]
                    with container.cond:
                        if condition == "removed":
                            container.cond.wait_for(lambda: container.removed)
                        else:
                            container.cond.wait_for(lambda: container.status == "exited")
                        code = container.exit_code
                    self._json(200, {"StatusCode": code, "Error": None})
                elif action == "stop":
                    if container.status != "running":
                        self._json(304)
                        return
                    engine.stop(container, float(query.get("t", ["10"])[0]))
                    self._json(204)
                else:
                    sig = query.get("signal", ["SIGKILL"])[0]
                    engine._signal(container, int(sig) if sig.isdigit() else signal.Signals[sig])
                    self._json(204)
            else:
                self._error(404, f"page not found: POST {path}")

        def do_DELETE(self) -> None:
            path, query = self._route()
            engine.requests.append(("DELETE", path))
            m = re.fullmatch(r"/containers/([^/]+)", path)
            if not m:
                self._error(404, f"page not found: DELETE {path}")
                return
            container = self._container(m.group(1))
            if container is None:
                return
            if container.status == "running":
                if query.get("force", ["false"])[0] not in ("1", "true", "True"):
                    self._error(409, "You cannot remove a running container. Stop the container before removing")
                    return
                engine.stop(container, 0)
            engine.remove(container)
            self._json(204)

    return Handler
