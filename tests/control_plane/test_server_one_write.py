"""The server's HTTP protocol (``orch.control_plane.server.OneWriteHttpProtocol``) in a real uvicorn process, talked
to over a real socket: a response sent in one piece leaves in one write, and everything HTTP/1.1 needs still works
(keep-alive, pipelining, streaming, ``HEAD``, empty bodies, ``100 Continue``, errors before and after the start).

The server script wraps each connection's transport to count its writes (per client port), and its test app tells
those counts back on another connection; everything else is uvicorn's and the protocol's own code.
"""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

pytestmark = [pytest.mark.integration]

SERVER = textwrap.dedent(
    """
    import asyncio, collections, json, socket, sys
    import uvicorn
    from uvicorn.importer import import_from_string
    from orch.control_plane.server import HTTP_PROTOCOL

    WRITES = collections.Counter()  # client port -> writes to that connection's transport
    STREAM_GO = {}  # client port -> event that lets /stream send its chunks

    class Counting:
        def __init__(self, transport):
            self._transport = transport
            self._port = transport.get_extra_info("peername")[1]
        def write(self, data):
            WRITES[self._port] += 1
            self._transport.write(data)
        def __getattr__(self, name):
            return getattr(self._transport, name)

    class CountingProtocol(import_from_string(HTTP_PROTOCOL)):
        def connection_made(self, transport):
            super().connection_made(Counting(transport))

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path, port = scope["path"], scope["client"][1]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if path == "/writes":
            answer = json.dumps(WRITES[int(body)]).encode()
        elif path == "/echo":
            answer = b"echo:" + body
        elif path == "/empty":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        elif path == "/stream":
            go = STREAM_GO.setdefault(port, asyncio.Event())
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await go.wait()  # set by /go: the headers must have reached the client before any chunk exists
            for chunk in (b"one", b"two", b""):
                await send({"type": "http.response.body", "body": chunk, "more_body": bool(chunk)})
            return
        elif path == "/go":
            STREAM_GO.setdefault(int(body), asyncio.Event()).set()
            answer = b"ok"
        elif path == "/fail-before-start":
            raise RuntimeError("failed before the response started")
        elif path == "/fail-after-start":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
            raise RuntimeError("failed after the response started")
        else:
            answer = b"not found"
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer if scope["method"] != "HEAD" else b""})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, http=CountingProtocol, log_level="critical", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
    """
)


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    script = tmp_path_factory.mktemp("one-write") / "server.py"
    script.write_text(SERVER)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"test server did not start: {proc.stderr.read() if proc.stderr else ''}")
        port = int(line)
        _wait_listening(port)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # a connection a failed test left open keeps uvicorn's graceful stop waiting
            proc.kill()
            proc.wait()


def _wait_listening(port: int) -> None:
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            import time

            time.sleep(0.05)
    raise TimeoutError("test server is not listening")


class Conn:
    """One keep-alive HTTP/1.1 connection on a plain socket: what goes on the wire is exactly what the test says."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.port = self.sock.getsockname()[1]
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
        return head.encode() + body

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def read_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError("closed before the end of the headers")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), headers

    def read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not self._fill():
                raise ConnectionError("closed before the end of the body")
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_chunk(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError("closed inside a chunk")
        size, self.buffer = self.buffer.split(b"\r\n", 1)
        data = self.read_exactly(int(size, 16) + 2)
        assert data.endswith(b"\r\n")
        return data[:-2]

    def response(self, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        status, headers = self.read_head()
        if head or status in (204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while chunk := self.read_chunk():
                body += chunk
            return status, headers, body
        return status, headers, self.read_exactly(int(headers["content-length"]))

    def closed_by_server(self) -> bool:
        """True once the server has closed the connection (after anything still buffered)."""
        return not self._fill()


def _writes(port: int, client_port: int) -> int:
    other = Conn(port)
    try:
        other.send(other.request("POST", "/writes", str(client_port).encode()))
        return int(other.response()[2])
    finally:
        other.close()


def test_a_response_in_one_piece_is_one_write_and_keep_alive_goes_on(port: int) -> None:
    conn = Conn(port)
    for n in range(5):
        conn.send(conn.request("POST", "/echo", f"hello {n}".encode()))
        status, headers, body = conn.response()
        assert (status, body) == (200, f"echo:hello {n}".encode())
        assert headers["content-type"] == "text/plain"
        assert headers["content-length"] == str(len(body))
        assert "date" in headers
    assert _writes(port, conn.port) == 5  # uvicorn's own protocol writes the headers and the body apart: 10
    conn.close()


def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    conn = Conn(port)
    conn.send(b"".join(conn.request("POST", "/echo", f"p{n}".encode()) for n in range(4)))
    assert [conn.response()[2] for _ in range(4)] == [b"echo:p0", b"echo:p1", b"echo:p2", b"echo:p3"]
    assert _writes(port, conn.port) == 4
    conn.close()


def test_a_streaming_response_sends_its_headers_before_its_first_chunk_exists(port: int) -> None:
    conn = Conn(port)
    conn.send(conn.request("GET", "/stream"))
    # The app holds its chunks until told to go: the headers must arrive on their own (this read times out
    # after 10 s if they waited for a chunk).
    status, headers = conn.read_head()
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    go = Conn(port)
    go.send(go.request("POST", "/go", str(conn.port).encode()))
    assert go.response()[2] == b"ok"
    go.close()
    assert [conn.read_chunk(), conn.read_chunk(), conn.read_chunk()] == [b"one", b"two", b""]
    # The connection still serves the next request, in one write.
    before = _writes(port, conn.port)
    conn.send(conn.request("POST", "/echo", b"after"))
    assert conn.response()[2] == b"echo:after"
    assert _writes(port, conn.port) == before + 1
    conn.close()


def test_head_and_empty_responses_keep_the_connection_in_step(port: int) -> None:
    conn = Conn(port)
    conn.send(conn.request("HEAD", "/echo"))
    status, headers, _ = conn.response(head=True)
    assert status == 200
    assert headers["content-length"] == "5"  # the length a GET would have: b"echo:" + b""
    conn.send(conn.request("GET", "/empty"))
    status, headers, _ = conn.response()
    assert status == 204
    assert "content-length" not in headers and "transfer-encoding" not in headers
    # Nothing was left over: the next response is read from its first byte.
    conn.send(conn.request("POST", "/echo", b"next"))
    assert conn.response()[2] == b"echo:next"
    assert conn.buffer == b""
    assert _writes(port, conn.port) == 3
    conn.close()


def test_expect_100_continue_gets_its_interim_answer_before_the_body_is_sent(port: int) -> None:
    conn = Conn(port)
    request = conn.request("POST", "/echo", b"late body", headers="Expect: 100-continue\r\n")
    head, body = request.split(b"\r\n\r\n", 1)
    conn.send(head + b"\r\n\r\n")
    status, _headers = conn.read_head()  # the server must answer without having the body
    assert status == 100
    conn.send(body)
    assert conn.response()[:3:2] == (200, b"echo:late body")
    conn.close()


def test_an_app_failing_before_its_response_starts_answers_500(port: int) -> None:
    conn = Conn(port)
    conn.send(conn.request("GET", "/fail-before-start"))
    status, headers, body = conn.response()
    assert (status, body) == (500, b"Internal Server Error")
    assert headers["connection"] == "close"
    assert conn.closed_by_server()
    conn.close()


def test_an_app_failing_after_its_response_started_sends_the_headers_then_closes(port: int) -> None:
    conn = Conn(port)
    conn.send(conn.request("GET", "/fail-after-start"))
    status, headers = conn.read_head()  # as with uvicorn's protocol: the headers went out, then the close
    assert (status, headers["content-length"]) == (200, "10")
    assert conn.closed_by_server()
    assert conn.buffer == b""
    conn.close()


def test_the_server_serves_with_this_protocol() -> None:
    """``orch server start`` (one process, or the workers) configures uvicorn with this protocol, by name."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from orch.control_plane import server
    from orch.control_plane.settings import get_settings

    config = server.uvicorn_config("orch.control_plane.server:worker_app", get_settings(), log_level="warning")
    try:
        config.load()
    finally:
        # Loading builds a worker's app, which freezes the heap (``settle_garbage_collector``) as a server process
        # should; this is the test process, shared with other tests: put it back.
        gc.unfreeze()
    assert config.http_protocol_class is server.OneWriteHttpProtocol
    assert issubclass(server.OneWriteHttpProtocol, HttpToolsProtocol)
