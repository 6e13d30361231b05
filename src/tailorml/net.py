"""The one guarded HTTP client for every call the server makes on someone else's behalf.

A tenant's recipe may name an endpoint (a paraphrase model; later, webhooks),
and a server that calls any URL it is given can be made to reach what only it
can see: loopback services, the private network, a cloud's metadata address.
``GuardedClient`` is httpx's request model over httpcore with a network
backend of its own that resolves the host itself, refuses every address that
the ``OutboundPolicy`` blocks and connects to the very address it checked, so
a DNS answer that changes between the check and the connection (rebinding)
cannot swap the target; TLS still verifies, and SNI and ``Host`` still carry,
the name. Every redirect is a new request whose connection passes the same
check. Nothing comes from the environment (no proxies, no netrc) and no
header is sent that the caller did not pass.

A call is bounded three ways: connect and read timeouts per operation, a
total deadline that also bounds a server trickling its answer, and a cap on
the answer's size. ``should_stop`` is polled every quarter second, so a
cancelled job's call ends within about a second even while it waits.

Failures raise ``OutboundError`` with one message for blocked, unresolvable,
refused, filtered, reset and timed-out alike, so the errors cannot map the
server's network; the server's log keeps the detail.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import re
import selectors
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

# The plain-socket stream of httpcore's own sync backend: the guarded backend connects the
# socket itself (to the checked address, in slices it can cancel) and hands it over.
from httpcore._backends.sync import SyncStream

from tailorml.errors import InvalidRequestError, JobCancelledError, OutboundError

log = logging.getLogger(__name__)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
StopCheck = Callable[[], bool]

_POLL_S = 0.25  # how often a waiting call looks at its deadline and should_stop
_REDIRECTS = (301, 302, 303, 307, 308)
_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie")
_HOST_NAME = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?$")

# Cloud instance-metadata services hand out credentials to whoever asks from the machine:
# blocked even when private addresses are allowed, unless an allow entry names them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean, OpenStack
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.170.23",  # AWS EKS pod identity
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
    )
)
# NAT64 prefixes carry an IPv4 address in their last 32 bits (RFC 6052, RFC 8215).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address reaches in the end (mapped, NAT64, 6to4, Teredo)."""
    found = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
    if any(ip in net for net in _NAT64):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in found if v4 is not None]


def is_public(ip: IPAddress) -> bool:
    """Whether ``ip`` is a globally routable unicast address, and so is any IPv4 it embeds."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner and (ip.ipv4_mapped or any(ip in net for net in _NAT64)):
            # ::ffff:a.b.c.d and 64:ff9b::a.b.c.d are the IPv4 address itself for routing;
            # Python counts both prefixes reserved, so judge the address inside.
            return all(is_public(v4) for v4 in inner)
        if ip.is_site_local or not all(is_public(v4) for v4 in inner):
            return False
    blocked = (
        ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )
    return ip.is_global and not blocked


def _is_metadata(ip: IPAddress) -> bool:
    inner = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else []
    return any(a in METADATA_ADDRESSES for a in (ip, *inner))


@dataclass(frozen=True)
class _Rule:
    host: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def matches(self, host: str, port: int, ip: IPAddress) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return self.host == host
        assert self.network is not None  # a rule is a host or a network
        return ip.version == self.network.version and ip in self.network


def _parse_rule(entry: str) -> _Rule:
    text = entry.strip().lower()
    try:
        if "/" in text:
            return _Rule(network=ipaddress.ip_network(text, strict=False))
        try:
            return _Rule(network=ipaddress.ip_network(text))
        except ValueError:
            pass
        port: int | None = None
        if text.startswith("["):  # [IPv6]:port
            inside, _, rest = text[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else None
            if rest and port is None:
                raise ValueError(rest)
            return _Rule(network=ipaddress.ip_network(inside), port=_checked_port(port))
        if text.count(":") == 1:
            text, _, digits = text.partition(":")
            port = _checked_port(int(digits))
            try:
                return _Rule(network=ipaddress.ip_network(text), port=port)
            except ValueError:
                pass
        name = text.encode("idna").decode("ascii").rstrip(".")
        if not _HOST_NAME.match(name):
            raise ValueError(name)
        return _Rule(host=name, port=port)
    except (ValueError, UnicodeError):
        raise InvalidRequestError(
            f"The outbound allow entry {entry!r} is not a host name, host:port, IP address "
            "or CIDR; write it like api.example.com, vllm.internal:8000, 10.0.0.5 or "
            "10.0.0.0/24."
        ) from None


def _checked_port(port: int | None) -> int | None:
    if port is not None and not 0 < port < 65536:
        raise ValueError(port)
    return port


@dataclass(frozen=True)
class OutboundPolicy:
    """Which addresses the guarded client may connect to.

    Public unicast addresses are allowed. Loopback, link-local, private (RFC
    1918, ULA), CGNAT, multicast, reserved and unspecified addresses, and the
    IPv4-mapped, NAT64, 6to4 and Teredo forms of those, are blocked unless
    ``allow_private`` is set; cloud metadata addresses stay blocked even then.
    An ``allow`` entry (a host name, ``host:port``, an IP address or a CIDR)
    lets through what it names whatever it resolves to, metadata included.
    """

    allow: tuple[str, ...] = ()
    allow_private: bool = False
    _rules: tuple[_Rule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", tuple(self.allow))
        object.__setattr__(self, "_rules", tuple(_parse_rule(e) for e in self.allow if e.strip()))

    def permits(self, host: str, port: int, ip: IPAddress) -> bool:
        """Whether a connection to ``ip`` (resolved from ``host``) on ``port`` may be made."""
        name = host.lower().rstrip(".")
        plain = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
        if any(rule.matches(name, port, plain) for rule in self._rules):
            return True
        if _is_metadata(ip):
            return False
        return self.allow_private or is_public(ip)


def check_url(url: str | httpx.URL) -> httpx.URL:
    """``url`` parsed, if it is one the client will call: http(s), a host, no credentials."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise OutboundError(
            f"{str(url)[:200]!r} is not an http:// or https:// URL with a host; "
            "write it like https://api.example.com/v1.",
            code="outbound_bad_url",
        )
    if parsed.userinfo:
        raise OutboundError(
            "The URL carries a user name or password; remove it and pass credentials "
            "as an API key instead.",
            code="outbound_bad_url",
        )
    return parsed


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


class _Stopped(httpcore.ReadError):
    """should_stop turned true while the call waited (mapped to JobCancelledError)."""


@dataclass
class _Call:
    """The deadline and stop check of the request this thread is making."""

    deadline: float
    should_stop: StopCheck | None
    stopped: bool = False

    def left(self) -> float:
        if self.should_stop is not None and self.should_stop():
            self.stopped = True
            raise _Stopped("should_stop")
        return self.deadline - time.monotonic()


_CALL: ContextVar[_Call | None] = ContextVar("tailorml_outbound_call", default=None)


def _budget(timeout: float | None) -> tuple[_Call | None, float]:
    """The running call and the seconds this operation may take (raises past the deadline)."""
    call = _CALL.get()
    limit = timeout if timeout is not None else float("inf")
    if call is not None:
        limit = min(limit, call.left())
    return call, limit


class _GuardedStream(httpcore.NetworkStream):
    """A stream whose reads wait in slices, so a deadline or a stop ends a trickle."""

    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        end = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            _, left = _budget(end - time.monotonic())
            if left <= 0:
                raise httpcore.ReadTimeout("read deadline passed")
            try:
                return self._inner.read(max_bytes, min(left, _POLL_S))
            except httpcore.ReadTimeout:
                continue  # a slice passed without data: look at the deadline and stop again

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _, left = _budget(timeout)
        if left <= 0:
            raise httpcore.WriteTimeout("write deadline passed")
        self._inner.write(buffer, None if left == float("inf") else left)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        _, left = _budget(timeout)
        if left <= 0:
            raise httpcore.ConnectTimeout("TLS deadline passed")
        wait = None if left == float("inf") else left
        return _GuardedStream(self._inner.start_tls(ssl_context, server_hostname, wait))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolve, check every address against the policy, connect to a checked one."""

    def __init__(self, policy: OutboundPolicy):
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        _, left = _budget(timeout)
        try:
            answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            log.warning("outbound: %s does not resolve: %s", host, exc)
            raise httpcore.ConnectError("name does not resolve") from None
        allowed: list[tuple[int, Any]] = []
        for family, _, _, _, sockaddr in answers:
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if self.policy.permits(host, port, ip):
                if (family, sockaddr) not in allowed:
                    allowed.append((family, sockaddr))
            else:
                log.warning("outbound: %s:%s resolves to %s, which is not allowed", host, port, ip)
        if not allowed:
            raise httpcore.ConnectError("every address of the host is blocked")
        deadline = time.monotonic() + left
        failure: OSError | None = None
        for family, sockaddr in allowed:
            try:
                sock = _connect(family, sockaddr, deadline, socket_options or ())
            except OSError as exc:
                log.warning("outbound: connecting to %s (%s) failed: %s", host, sockaddr[0], exc)
                failure = exc
                continue
            return _GuardedStream(SyncStream(sock))
        timed_out = isinstance(failure, TimeoutError)
        raise (httpcore.ConnectTimeout if timed_out else httpcore.ConnectError)("connect failed")


def _connect(family: int, sockaddr: Any, deadline: float, options: Iterable[Any]) -> socket.socket:
    """A TCP connection to exactly ``sockaddr``, waited for in slices until ``deadline``."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        for option in options:
            sock.setsockopt(*option)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        code = sock.connect_ex(sockaddr)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            raise OSError(code, os.strerror(code))
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_WRITE)
            while code != 0:
                _, left = _budget(deadline - time.monotonic())
                if left <= 0:
                    raise TimeoutError("connect timed out")
                if sel.select(min(left, _POLL_S)):
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        raise OSError(code, os.strerror(code))
                    break
        sock.setblocking(True)
        return sock
    except BaseException:
        sock.close()
        raise


@dataclass(frozen=True)
class OutboundResponse:
    """A finished answer: its status, headers and body (at most the client's size cap)."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    url: httpx.URL

    def json(self) -> Any:
        return json.loads(self.content)


_FAILED = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
)


class GuardedClient:
    """HTTP calls to one endpoint under an ``OutboundPolicy``; thread-safe, pooled.

    ``headers`` are the only headers sent besides the protocol's own (Host,
    Content-Length, Content-Type, Accept-Encoding: identity, User-Agent).
    ``name`` says in errors which endpoint failed ("paraphrase endpoint").
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        total_timeout: float = 120.0,
        max_response_bytes: int = 10 * 1024**2,
        max_redirects: int = 3,
        should_stop: StopCheck | None = None,
        name: str = "endpoint",
        param: str | None = None,
        max_connections: int = 16,
    ):
        self.base_url = check_url(base_url)
        self.headers = dict(headers or {})
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.max_response_bytes = max_response_bytes
        self.max_redirects = max_redirects
        self.should_stop = should_stop
        self.name = name
        self.param = param
        # SSL_CERT_FILE/SSL_CERT_DIR are the only environment the client reads: an operator's
        # CA for a private endpoint. Proxies and netrc are never consulted (no httpx.Client).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=_GuardedBackend(policy),
            max_connections=max_connections,
            retries=0,
        )

    def __enter__(self) -> GuardedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.close()

    @property
    def _where(self) -> str:
        port = f":{self.base_url.port}" if self.base_url.port else ""
        return f"{self.base_url.scheme}://{self.base_url.host}{port}"

    def _error(self, why: str, code: str = "outbound_failed") -> OutboundError:
        return OutboundError(f"The {self.name} {self._where} {why}", param=self.param, code=code)

    def _unreachable(self) -> OutboundError:
        return self._error(
            "could not be reached from this server, or it is not allowed; check the URL. "
            "An operator can allow a host with TAILOR_OUTBOUND_ALLOW."
        )

    def url_for(self, path: str) -> httpx.URL:
        """``path`` under the base URL, as httpx's ``base_url`` joins them."""
        base = str(self.base_url.copy_with(query=None, fragment=None)).rstrip("/")
        return check_url(f"{base}/{path.lstrip('/')}" if path else base)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> OutboundResponse:
        """Send one request (following at most ``max_redirects`` redirects) and read the answer."""
        call = _Call(time.monotonic() + self.total_timeout, self.should_stop)
        token = _CALL.set(call)
        try:
            url = self.url_for(path)
            sent = {**self.headers, **(headers or {})}
            content = None if json_body is None else json.dumps(json_body).encode()
            hops = 0
            while True:
                response = self._send(call, method, url, sent, content)
                location = response.headers.get("location")
                if response.status_code not in _REDIRECTS or location is None:
                    return response
                hops += 1
                if hops > self.max_redirects:
                    raise self._error(f"redirected more than {self.max_redirects} times.")
                try:
                    target = check_url(url.join(location))
                except (OutboundError, httpx.InvalidURL):
                    raise self._error("redirected to a URL this server does not follow.") from None
                if response.status_code == 303 or (
                    response.status_code in (301, 302) and method == "POST"
                ):
                    method, content = "GET", None  # what browsers and httpx do
                if _origin(target) != _origin(url):
                    sent = {k: v for k, v in sent.items() if k.lower() not in _CREDENTIAL_HEADERS}
                url = target
        finally:
            _CALL.reset(token)

    def post_json(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON and return the decoded JSON answer (2xx only)."""
        response = self.request("POST", path, json_body=body)
        if not 200 <= response.status_code < 300:
            raise self._error(
                f"answered HTTP {response.status_code}; check the URL, the model and the API key.",
                code="outbound_http_status",
            )
        try:
            return response.json()
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than json allows
            raise self._error("did not answer JSON; check the URL.") from None

    def _send(
        self,
        call: _Call,
        method: str,
        url: httpx.URL,
        headers: Mapping[str, str],
        content: bytes | None,
    ) -> OutboundResponse:
        built = httpx.Request(method, url, headers=headers, content=content)
        built.headers.setdefault("User-Agent", "tailorml")
        # An encoded body would be expanded past the size cap before it could be counted.
        built.headers["Accept-Encoding"] = "identity"
        if content is not None:
            built.headers.setdefault("Content-Type", "application/json")
        try:
            left = call.left()
            if left <= 0:
                raise httpcore.ReadTimeout("total deadline passed")
            wait = {"connect": min(self.connect_timeout, left), "pool": left}
            request = httpcore.Request(
                method=built.method,
                url=httpcore.URL(
                    scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
                ),
                headers=built.headers.raw,
                content=built.content,
                extensions={
                    "timeout": {**wait, "read": self.read_timeout, "write": self.read_timeout}
                },
            )
            answer = self._pool.handle_request(request)
            try:
                headers_in = httpx.Headers(answer.headers)
                body = b"" if answer.status in _REDIRECTS else self._read(answer, headers_in)
            finally:
                answer.close()
        except _FAILED as exc:
            if call.stopped:
                raise JobCancelledError(
                    f"The job was cancelled while waiting for the {self.name} {self._where}."
                ) from None
            log.warning("outbound %s %s failed: %s: %s", method, url.copy_with(query=None),
                        type(exc).__name__, exc)  # fmt: skip
            raise self._unreachable() from None
        return OutboundResponse(answer.status, headers_in, body, url)

    def _read(self, answer: httpcore.Response, headers: httpx.Headers) -> bytes:
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise self._error("answered with a compressed body although none was asked for.")
        declared = headers.get("content-length", "")
        cap = self.max_response_bytes
        if declared.isdigit() and int(declared) > cap:
            raise self._error(f"answered more than {cap:,} bytes.", code="outbound_too_large")
        body = bytearray()
        for chunk in answer.iter_stream():
            body += chunk
            if len(body) > cap:
                raise self._error(f"answered more than {cap:,} bytes.", code="outbound_too_large")
        return bytes(body)
