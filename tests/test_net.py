"""The guarded outbound client against real HTTP servers on 127.0.0.1.

Servers run in threads; the only fake is the DNS answer (``socket.getaddrinfo``)
where a test needs a name to resolve to an address of its choosing.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tailorml.errors import InvalidRequestError, JobCancelledError, OutboundError
from tailorml.net import GuardedClient, OutboundPolicy, check_url, is_public

Handle = Callable[[BaseHTTPRequestHandler], None]
LOOPBACK = OutboundPolicy(allow=("127.0.0.1",))


class _Server(ThreadingHTTPServer):
    """Counts connections (accepted sockets) and keeps every request's path and headers."""

    def __init__(self, handle: Handle, closing: threading.Event):
        self.connections = 0
        self.hits: list[dict[str, Any]] = []
        self.closing = closing
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else b""
                server.hits.append({"path": self.path, "method": self.command,
                                    "headers": dict(self.headers), "body": body})  # fmt: skip
                handle(self)

            do_GET = do_POST = _any  # noqa: N815 - http.server's naming

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up on purpose (the size cap, a timeout) is not a failure

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1
        return True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"{}", **headers: str) -> None:
    handler.send_response(status)
    for name, value in {"Content-Type": "application/json", **headers}.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def ok(handler: BaseHTTPRequestHandler) -> None:
    send(handler, 200, json.dumps({"ok": True}).encode())


@pytest.fixture
def serve() -> Iterator[Callable[[Handle], _Server]]:
    closing = threading.Event()
    servers: list[_Server] = []

    def start(handle: Handle) -> _Server:
        server = _Server(handle, closing)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    closing.set()
    for server in servers:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names resolve to the addresses listed here, one answer per lookup, in turn."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            ip = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            addr = (ip, port, 0, 0) if family == socket.AF_INET6 else (ip, port)
            return [(family, socket.SOCK_STREAM, 6, "", addr)]
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return answers


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.1.1",
     "0.0.0.0", "255.255.255.255", "224.0.0.1", "240.0.0.1", "::1", "::", "fe80::1",
     "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
     "::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1",
     "169.254.169.254", "fd00:ec2::254"],
)  # fmt: skip
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    assert not OutboundPolicy().permits("host.example", 80, ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert is_public(ip) and OutboundPolicy().permits("host.example", 443, ip)


def test_metadata_stays_blocked_with_private_allowed_unless_listed() -> None:
    private = OutboundPolicy(allow_private=True)
    for address in ("169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254",
                    "64:ff9b::a9fe:a9fe"):  # fmt: skip
        assert not private.permits("h", 80, ipaddress.ip_address(address)), address
    assert private.permits("h", 80, ipaddress.ip_address("10.0.0.1"))
    listed = OutboundPolicy(allow=("169.254.169.254",), allow_private=True)
    assert listed.permits("h", 80, ipaddress.ip_address("169.254.169.254"))


def test_allow_entries_name_hosts_ports_addresses_and_networks() -> None:
    policy = OutboundPolicy(allow=("vllm.internal", "db.internal:8000", "10.0.0.0/24",
                                   "192.168.1.7:9000", "[::1]:8080"))  # fmt: skip
    loop, lan = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.9")
    assert policy.permits("VLLM.internal.", 1234, loop)
    assert policy.permits("db.internal", 8000, loop) and not policy.permits("db.internal", 22, loop)
    assert policy.permits("x", 22, lan)
    assert not policy.permits("x", 22, ipaddress.ip_address("10.0.1.1"))
    assert policy.permits("x", 9000, ipaddress.ip_address("::ffff:192.168.1.7"))
    assert not policy.permits("x", 9001, ipaddress.ip_address("192.168.1.7"))
    assert policy.permits("x", 8080, ipaddress.ip_address("::1"))
    with pytest.raises(InvalidRequestError, match="is not a host name"):
        OutboundPolicy(allow=("http://evil/",))


def test_urls_must_be_http_without_credentials() -> None:
    assert check_url("https://api.example.com/v1").host == "api.example.com"
    for bad in ("file:///etc/passwd", "gopher://x/", "ftp://x/", "http:///nohost", "not a url"):
        with pytest.raises(OutboundError, match="not an http"):
            check_url(bad)
    with pytest.raises(OutboundError, match="user name or password"):
        check_url("http://admin:secret@example.com/")


def test_loopback_is_refused_by_default_before_connecting(serve: Callable) -> None:
    server = serve(ok)
    with pytest.raises(OutboundError, match="could not be reached") as err:
        GuardedClient(OutboundPolicy(), base_url=server.url).post_json("/x", {})
    assert server.connections == 0 and err.value.code == "outbound_failed"


def test_loopback_is_reachable_when_listed(serve: Callable, dns: dict) -> None:
    server = serve(ok)
    port = server.server_address[1]
    assert GuardedClient(LOOPBACK, base_url=server.url).post_json("/x", {"a": 1}) == {"ok": True}
    dns["vllm.test"] = ["127.0.0.1"]
    by_name = OutboundPolicy(allow=(f"vllm.test:{port}",))
    with GuardedClient(by_name, base_url=f"http://vllm.test:{port}/v1") as client:
        assert client.post_json("chat", {}) == {"ok": True}
    assert [h["path"] for h in server.hits] == ["/x", "/v1/chat"]
    assert server.hits[1]["headers"]["Host"] == f"vllm.test:{port}"  # the name, not the address


def test_names_resolving_to_private_or_metadata_are_refused(serve: Callable, dns: dict) -> None:
    server = serve(ok)
    port = server.server_address[1]
    dns["evil.test"] = ["127.0.0.1"]
    dns["meta.test"] = ["169.254.169.254"]
    dns["mapped.test"] = ["::ffff:127.0.0.1"]
    for host in ("evil.test", "mapped.test", "localhost"):
        with pytest.raises(OutboundError, match="could not be reached"):
            GuardedClient(OutboundPolicy(), base_url=f"http://{host}:{port}").post_json("/", {})
    started = time.monotonic()
    with pytest.raises(OutboundError, match="could not be reached"):
        client = GuardedClient(OutboundPolicy(allow_private=True), base_url="http://meta.test/")
        client.post_json("/latest/meta-data/", {})
    assert time.monotonic() - started < 1  # refused, not a connection attempt that timed out
    assert server.connections == 0


def test_redirect_from_an_allowed_host_to_a_blocked_one_is_refused(serve: Callable) -> None:
    inner = serve(ok)
    outer = serve(lambda h: send(h, 302, Location=f"{inner.url}/admin"))
    policy = OutboundPolicy(allow=(f"127.0.0.1:{outer.server_address[1]}",))
    with pytest.raises(OutboundError, match="could not be reached"):
        GuardedClient(policy, base_url=outer.url).post_json("/", {})
    assert len(outer.hits) == 1 and inner.connections == 0


def test_redirects_are_capped_and_other_schemes_refused(serve: Callable) -> None:
    loop = serve(lambda h: send(h, 307, Location="/again"))
    with pytest.raises(OutboundError, match="redirected more than 2 times"):
        GuardedClient(LOOPBACK, base_url=loop.url, max_redirects=2).post_json("/", {})
    assert len(loop.hits) == 3
    to_file = serve(lambda h: send(h, 302, Location="file:///etc/passwd"))
    with pytest.raises(OutboundError, match="does not follow"):
        GuardedClient(LOOPBACK, base_url=to_file.url).post_json("/", {})


def test_cross_origin_redirect_drops_authorization(serve: Callable) -> None:
    other = serve(ok)
    same = serve(lambda h: ok(h) if h.path == "/final" else send(h, 307, Location="/final"))
    away = serve(lambda h: send(h, 307, Location=f"{other.url}/final"))
    auth = {"Authorization": "Bearer sk-tenant"}
    GuardedClient(LOOPBACK, base_url=same.url, headers=auth).post_json("/", {"x": 1})
    assert [h["headers"].get("Authorization") for h in same.hits] == ["Bearer sk-tenant"] * 2
    assert same.hits[1]["body"] == b'{"x": 1}'  # 307 keeps the method and the body
    GuardedClient(LOOPBACK, base_url=away.url, headers=auth).post_json("/", {})
    assert away.hits[0]["headers"]["Authorization"] == "Bearer sk-tenant"
    assert "Authorization" not in other.hits[0]["headers"]


def test_rebinding_cannot_reach_loopback(serve: Callable, dns: dict) -> None:
    """The first answer is public (passes the check), the next is loopback: the client
    connects to the address it checked, and the next lookup is checked again."""
    server = serve(ok)
    port = server.server_address[1]
    dns["rebind.test"] = ["93.184.215.14", "127.0.0.1"]
    client = GuardedClient(OutboundPolicy(), base_url=f"http://rebind.test:{port}",
                           connect_timeout=0.5, total_timeout=1)  # fmt: skip
    for _ in range(2):
        try:
            client.post_json("/", {})
        except OutboundError:
            pass  # the public address is not reachable from a test machine
    assert server.connections == 0 and dns["rebind.test"] == ["127.0.0.1"]


def test_answers_over_the_cap_are_refused(serve: Callable) -> None:
    big = b"[" + b"1," * 600_000 + b"1]"
    declared = serve(lambda h: send(h, 200, big))

    def chunked(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for _ in range(200):
            h.wfile.write(b"1000\r\n" + b"x" * 4096 + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")

    streamed = serve(chunked)
    for server in (declared, streamed):
        with pytest.raises(OutboundError, match="more than 100,000 bytes") as err:
            GuardedClient(LOOPBACK, base_url=server.url, max_response_bytes=100_000).post_json(
                "/", {}
            )
        assert err.value.code == "outbound_too_large"


def test_a_trickling_server_is_stopped_by_the_total_timeout(serve: Callable) -> None:
    def trickle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        while not h.server.closing.is_set():  # type: ignore[attr-defined]
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(0.1)

    server = serve(trickle)
    client = GuardedClient(LOOPBACK, base_url=server.url, read_timeout=5, total_timeout=1)
    started = time.monotonic()
    with pytest.raises(OutboundError, match="could not be reached"):
        client.post_json("/", {})
    assert time.monotonic() - started < 2


def test_should_stop_ends_a_blocked_call_quickly(serve: Callable) -> None:
    server = serve(lambda h: h.server.closing.wait(10))  # type: ignore[attr-defined]
    asked = time.monotonic() + 0.5
    client = GuardedClient(LOOPBACK, base_url=server.url, read_timeout=30, total_timeout=30,
                           should_stop=lambda: time.monotonic() > asked)  # fmt: skip
    with pytest.raises(JobCancelledError, match="cancelled"):
        client.post_json("/", {})
    assert time.monotonic() - asked < 1


def test_refused_blocked_and_timed_out_read_the_same(serve: Callable) -> None:
    silent = serve(lambda h: h.server.closing.wait(10))  # type: ignore[attr-defined]
    open_port, closed = silent.server_address[1], _closed_port()
    messages = set()
    for policy, port in [
        (OutboundPolicy(), open_port),  # blocked, open
        (OutboundPolicy(), closed),  # blocked, closed
        (LOOPBACK, closed),  # allowed, connection refused
        (LOOPBACK, open_port),  # allowed, never answers
    ]:
        client = GuardedClient(policy, base_url=f"http://127.0.0.1:{port}", total_timeout=0.5)
        with pytest.raises(OutboundError) as err:
            client.post_json("/", {})
        messages.add(err.value.message.replace(str(port), "PORT"))
    assert len(messages) == 1, messages
    assert "TAILOR_OUTBOUND_ALLOW" in messages.pop()


def test_unknown_names_read_like_blocked_ones(dns: dict) -> None:
    dns["internal.test"] = ["10.0.0.1"]
    seen = []
    for host in ("nowhere.invalid", "internal.test"):
        with pytest.raises(OutboundError) as err:
            GuardedClient(OutboundPolicy(), base_url=f"http://{host}/").post_json("/", {})
        seen.append(err.value.message.replace(host, "HOST"))
    assert seen[0] == seen[1]


def test_http_status_is_reported_by_code_only(serve: Callable) -> None:
    server = serve(lambda h: send(h, 404, b'{"error": "secret internal detail"}'))
    with pytest.raises(OutboundError, match="answered HTTP 404") as err:
        GuardedClient(LOOPBACK, base_url=server.url).post_json("/", {})
    assert "secret" not in err.value.message


def test_environment_proxies_and_netrc_are_ignored(
    serve: Callable, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    proxy, target = serve(ok), serve(ok)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy.url)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login admin password hunter2\n")
    monkeypatch.setenv("NETRC", str(netrc))
    GuardedClient(LOOPBACK, base_url=target.url).post_json("/", {})
    assert proxy.connections == 0 and len(target.hits) == 1
    sent = {k.lower() for k in target.hits[0]["headers"]}
    assert sent == {"host", "content-length", "content-type", "accept-encoding", "user-agent"}
