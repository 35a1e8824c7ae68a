"""SIP for the emulator's SIP-over-WebSocket gateway (RFC 3261, RFC 7118), as JsSIP speaks it.

Parsing and serialising messages, SIP URIs and name-addrs, responses built from requests, and
HTTP digest (RFC 2617/7616: MD5, qop=auth) the way SIP uses it. No transport, no state
machines: those are the gateway's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote

# Over WebSocket a frame is one message; anything larger is refused before parsing.
MAX_MESSAGE = 64 * 1024
VERSION = "SIP/2.0"
CRLF = "\r\n"

# RFC 3261 7.3.3 and the extensions JsSIP may use; parsed names are stored expanded.
COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "r": "Refer-To",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "b": "Referred-By",
}

REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
# A value may hold anything visible plus spaces and tabs: a CR or LF would end the header.
VALUE = re.compile(r"^[^\x00-\x08\x0a-\x1f\x7f]*$")
STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9]{2})(?: (.*))?$", re.IGNORECASE)
REQUEST_LINE = re.compile(r"^([A-Za-z0-9.!%*_+`'~-]+) (\S+) SIP/2\.0$", re.IGNORECASE)


class SipError(ValueError):
    """A message, URI or header that is not valid SIP."""


def _key(name: str) -> str:
    """The case-insensitive key of a header name, compact forms expanded."""
    lowered = name.lower()
    return COMPACT.get(lowered, name).lower() if len(lowered) == 1 else lowered


def full_name(name: str) -> str:
    """The header name with a compact form expanded (`i` -> `Call-ID`); others unchanged."""
    return COMPACT.get(name.lower(), name) if len(name) == 1 else name


class Headers:
    """Header fields in order, names as written, looked up case-insensitively."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        for name, value in items:
            self.add(name, value)

    @staticmethod
    def _checked(name: str, value: str) -> tuple[str, str]:
        if not TOKEN.match(name):
            raise SipError(f"invalid header name {name!r}")
        if not VALUE.match(value):
            raise SipError(f"header {name} holds control characters")
        return full_name(name), value.strip()

    def add(self, name: str, value: str) -> None:
        """Append one field (a compact name is stored expanded)."""
        self._items.append(self._checked(name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name with one, where the first one was."""
        checked = self._checked(name, value)
        key = _key(name)
        index = next((i for i, (n, _) in enumerate(self._items) if _key(n) == key), None)
        self.remove(name)
        self._items.insert(len(self._items) if index is None else index, checked)

    def remove(self, name: str) -> None:
        """Drop every field of that name."""
        key = _key(name)
        self._items = [(n, v) for n, v in self._items if _key(n) != key]

    def get(self, name: str) -> str | None:
        """The first field's value, or None."""
        key = _key(name)
        return next((v for n, v in self._items if _key(n) == key), None)

    def get_all(self, name: str) -> list[str]:
        """Every field's value of that name, in order (comma lists are not split)."""
        key = _key(name)
        return [v for n, v in self._items if _key(n) == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    __hash__ = None  # type: ignore[assignment]  # mutable: compared, never hashed

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class _Fields:
    """What requests and responses share: header shortcuts and the wire form."""

    headers: Headers
    body: str

    def start_line(self) -> str:
        """The request or status line."""
        raise NotImplementedError

    @property
    def call_id(self) -> str:
        """The Call-ID ('' when missing)."""
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """The CSeq number and method; SipError when missing or malformed."""
        return parse_cseq(self.headers.get("CSeq") or "")

    @property
    def branch(self) -> str | None:
        """The branch of the top Via."""
        vias = self.vias
        return via_branch(vias[0]) if vias else None

    @property
    def vias(self) -> list[str]:
        """Every Via value in order, comma lists split."""
        return [via for line in self.headers.get_all("Via") for via in split_list(line)]

    @property
    def from_tag(self) -> str | None:
        """The From tag."""
        value = self.headers.get("From")
        return parse_name_addr(value).tag if value else None

    @property
    def to_tag(self) -> str | None:
        """The To tag."""
        value = self.headers.get("To")
        return parse_name_addr(value).tag if value else None

    @property
    def content_type(self) -> str:
        """The media type of the body, lower case, without parameters."""
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

    def serialise(self) -> str:
        """The message as sent: CRLF lines, Content-Length counted in bytes."""
        lines = [self.start_line()]
        lines.extend(f"{n}: {v}" for n, v in self.headers if _key(n) != "content-length")
        lines.append(f"Content-Length: {len(self.body.encode())}")
        return CRLF.join(lines) + CRLF + CRLF + self.body


@dataclass
class Request(_Fields):
    """A SIP request."""

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: str = ""

    def start_line(self) -> str:
        """`METHOD uri SIP/2.0`."""
        return f"{self.method} {self.uri} {VERSION}"


@dataclass
class Response(_Fields):
    """A SIP response."""

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: str = ""

    def start_line(self) -> str:
        """`SIP/2.0 code reason`."""
        return f"{VERSION} {self.status} {self.reason}"


Message = Request | Response


def parse(data: str | bytes, *, max_size: int = MAX_MESSAGE) -> Message:
    """Parse one message (a WebSocket frame); SipError when it is not SIP."""
    raw = data if isinstance(data, bytes) else data.encode()
    if len(raw) > max_size:
        raise SipError(f"message larger than {max_size} bytes")
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise SipError("message is not UTF-8") from exc
    # RFC 3261 7.5: leading CRLFs are tolerated (keep-alives glued to a message).
    text = text.lstrip("\r\n")
    head, separator, body = text.partition("\r\n\r\n")
    if not separator:
        head, separator, body = text.partition("\n\n")
    if not separator:
        head, body = text.rstrip("\r\n"), ""
    lines = [line.rstrip("\r") for line in head.split("\n")]
    message = _start(lines[0])
    for name, value in _fields(lines[1:]):
        try:
            message.headers.add(name, value)
        except SipError as exc:
            raise SipError(f"bad header: {exc}") from exc
    message.body = _body(message.headers.get("Content-Length"), body)
    return message


def _start(line: str) -> Message:
    status = STATUS_LINE.match(line)
    if status:
        return Response(int(status.group(1)), (status.group(2) or "").strip())
    request = REQUEST_LINE.match(line)
    if request:
        return Request(request.group(1).upper(), request.group(2))
    raise SipError(f"not a SIP start line: {line[:80]!r}")


def _fields(lines: list[str]) -> Iterator[tuple[str, str]]:
    """(name, value) pairs, folded continuation lines joined (RFC 3261 7.3.1)."""
    pending: list[str] | None = None
    for line in lines:
        if line[:1] in (" ", "\t"):
            if pending is None:
                raise SipError("continuation line without a header")
            pending[1] += " " + line.strip()
            continue
        if pending is not None:
            yield pending[0], pending[1]
        name, colon, value = line.partition(":")
        if not colon:
            raise SipError(f"header line without a colon: {line[:80]!r}")
        pending = [name.strip(), value.strip()]
    if pending is not None:
        yield pending[0], pending[1]


def _body(length: str | None, body: str) -> str:
    """The body as Content-Length (bytes) delimits it; a frame may carry no length at all."""
    if length is None:
        return body
    if not length.strip().isdigit():
        raise SipError("Content-Length is not a number")
    size = int(length)
    encoded = body.encode()
    if len(encoded) < size:
        raise SipError("body shorter than Content-Length")
    try:
        return encoded[:size].decode()
    except UnicodeDecodeError as exc:
        raise SipError("Content-Length splits a character") from exc


def parse_cseq(value: str) -> tuple[int, str]:
    """`CSeq: 12 INVITE` as (12, 'INVITE'); SipError when malformed."""
    number, _, method = value.strip().partition(" ")
    if not number.isdigit() or not TOKEN.match(method.strip()):
        raise SipError(f"malformed CSeq {value!r}")
    return int(number), method.strip().upper()


def _scan(text: str, stops: str, *, brackets: bool = True) -> Iterator[tuple[int, str]]:
    """(index, char) of the characters of `stops` outside quoted strings (and <...>)."""
    quoted = escaped = False
    angle = 0
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            escaped = char == "\\"
            quoted = char != '"'
        elif char == '"':
            quoted = True
        elif brackets and char == "<":
            angle += 1
        elif brackets and char == ">":
            angle = max(angle - 1, 0)
        elif angle == 0 and char in stops:
            yield index, char


def _split(text: str, separator: str) -> list[str]:
    """`text` split at `separator` outside quotes and angle brackets."""
    parts, start = [], 0
    for index, _ in _scan(text, separator):
        parts.append(text[start:index])
        start = index + 1
    parts.append(text[start:])
    return parts


def split_list(value: str) -> list[str]:
    """A comma-separated header value (Via, Contact) as its elements."""
    return [part.strip() for part in _split(value, ",") if part.strip()]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def quote(value: str) -> str:
    """A quoted-string holding `value`."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_params(text: str) -> dict[str, str | None]:
    """`;a=1;b;c="x"` as {'a': '1', 'b': None, 'c': 'x'} (names lower case)."""
    params: dict[str, str | None] = {}
    for part in _split(text, ";"):
        name, equals, value = part.partition("=")
        if name.strip():
            params[name.strip().lower()] = _unquote(value.strip()) if equals else None
    return params


@dataclass(frozen=True)
class SipUri:
    """A sip: or sips: URI, user percent-decoded, host lower case."""

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)


def parse_uri(text: str) -> SipUri:
    """Parse `sip:user@host:port;params?headers`; SipError for anything else."""
    scheme, colon, rest = text.strip().partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("sip", "sips"):
        raise SipError(f"not a SIP URI: {text[:80]!r}")
    # '@' is never unescaped in host, params or headers, so the first one ends the user info.
    userinfo, at, hostpart = rest.partition("@")
    if not at:
        userinfo, hostpart = "", rest
    user = unquote(userinfo.partition(":")[0]) if at else None
    hostpart = hostpart.partition("?")[0]
    hostport, _, params = hostpart.partition(";")
    if hostport.startswith("["):
        host, bracket, tail = hostport[1:].partition("]")
        if not bracket:
            raise SipError(f"bad IPv6 reference in {text[:80]!r}")
        host, port_text = f"[{host}]", tail.removeprefix(":")
    else:
        host, _, port_text = hostport.partition(":")
    if not host or (port_text and not port_text.isdigit()):
        raise SipError(f"bad host in {text[:80]!r}")
    port = int(port_text) if port_text else None
    return SipUri(scheme, user, host.lower(), port, parse_params(params))


@dataclass(frozen=True)
class NameAddr:
    """A From/To/Contact value: display name, URI and header parameters."""

    display: str | None
    uri: str
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        """The `tag` parameter."""
        return self.params.get("tag")


def _addr(value: str) -> tuple[str, str, str]:
    """(display part, URI, header parameters) of a name-addr or addr-spec."""
    first = next(_scan(value, "<;", brackets=False), None)
    if first is not None and first[1] == "<":
        close = value.find(">", first[0])
        if close < 0:
            raise SipError(f"unclosed '<' in {value[:80]!r}")
        return value[: first[0]], value[first[0] + 1 : close].strip(), value[close + 1 :]
    # An addr-spec: its parameters belong to the header, not the URI (RFC 3261 20.10).
    cut = first[0] if first is not None else len(value)
    return "", value[:cut].strip(), value[cut:]


def parse_name_addr(value: str) -> NameAddr:
    """Parse `"Name" <sip:...>;tag=x`, `<sip:...>` or `sip:...;tag=x`."""
    display, uri, params = _addr(value.strip())
    if not uri:
        raise SipError(f"no URI in {value[:80]!r}")
    return NameAddr(_unquote(display.strip()) or None, uri, parse_params(params))


def with_param(value: str, name: str, param: str | None) -> str:
    """The header value with header parameter `name` set (replaced if present)."""
    display, uri, params = _addr(value.strip())
    name = name.lower()
    kept = [p.strip() for p in _split(params, ";") if p.strip()]
    kept = [p for p in kept if p.partition("=")[0].strip().lower() != name]
    kept.append(name if param is None else f"{name}={param}")
    # Always bracketed: after a bare addr-spec a new parameter would read as the URI's.
    head = f"{display.strip()} <{uri}>" if display.strip() else f"<{uri}>"
    return head + "".join(f";{p}" for p in kept)


def uri_of(value: str) -> SipUri:
    """The SIP URI of a URI or a name-addr header value."""
    return parse_uri(parse_name_addr(value).uri)


def user_of(value: str) -> str | None:
    """The user part of a URI or name-addr (`sip:alice@host` -> 'alice')."""
    return uri_of(value).user


def host_of(value: str) -> str:
    """The host of a URI or name-addr, lower case."""
    return uri_of(value).host


def via_branch(via: str) -> str | None:
    """The branch parameter of one Via value."""
    _, _, params = via.partition(";")
    return parse_params(params).get("branch")


def new_tag() -> str:
    """A random From/To tag."""
    return secrets.token_hex(6)


def new_branch() -> str:
    """A random RFC 3261 branch (magic cookie prefix)."""
    return "z9hG4bK" + secrets.token_hex(10)


def response_to(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: str = "",
    content_type: str | None = None,
) -> Response:
    """A response to `request`: Via(s), From, To, Call-ID and CSeq copied; a To-tag if missing."""
    # 100 Trying creates no dialog, so it gets no tag; others get `to_tag` or a random one.
    response = Response(status, reason or REASONS.get(status, "Unknown"))
    if not VALUE.match(response.reason):
        raise SipError("reason phrase holds control characters")
    for via in request.headers.get_all("Via"):
        response.headers.add("Via", via)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        if value is None:
            continue
        if name == "To" and status != 100 and parse_name_addr(value).tag is None:
            value = with_param(value, "tag", to_tag or new_tag())
        response.headers.add(name, value)
    for name, value in headers:
        response.headers.add(name, value)
    if body:
        response.headers.add("Content-Type", content_type or "application/sdp")
        response.body = body
    return response


# --- HTTP digest as SIP uses it (RFC 2617, RFC 7616 MD5) -----------------------------------


@dataclass(frozen=True)
class DigestCredentials:
    """An Authorization or Proxy-Authorization header, parsed; the response stays out of repr."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str = field(repr=False)
    algorithm: str | None = None
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None


def challenge(realm: str, nonce: str, *, stale: bool = False) -> str:
    """A WWW-Authenticate / Proxy-Authenticate value: MD5, qop=auth."""
    value = f'Digest realm={quote(realm)}, nonce={quote(nonce)}, algorithm=MD5, qop="auth"'
    return value + ", stale=true" if stale else value


def _auth_params(text: str) -> dict[str, str] | None:
    """`a="x", b=y` as a dict; None when malformed or a name repeats."""
    params: dict[str, str] = {}
    for part in _split(text, ","):
        if not part.strip():
            continue
        name, equals, value = part.partition("=")
        name = name.strip().lower()
        if not equals or not TOKEN.match(name) or name in params:
            return None
        params[name] = _unquote(value.strip())
    return params


def parse_authorization(value: str) -> DigestCredentials | None:
    """Parse a Digest Authorization header; None when not Digest or a field is missing."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params = _auth_params(rest)
    if params is None or not all(
        params.get(k) for k in ("username", "realm", "nonce", "uri", "response")
    ):
        return None
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=params.get("algorithm"),
        qop=params.get("qop"),
        nc=params.get("nc"),
        cnonce=params.get("cnonce"),
        opaque=params.get("opaque"),
    )


def _md5(text: str) -> str:
    # MD5 is what the protocol (and JsSIP) uses, not a choice made here.
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def digest_response(credentials: DigestCredentials, method: str, password: str) -> str | None:
    """The response the credentials should carry for `password`; None if unsupported."""
    if (credentials.algorithm or "MD5").upper() != "MD5":
        return None
    ha1 = _md5(f"{credentials.username}:{credentials.realm}:{password}")
    ha2 = _md5(f"{method}:{credentials.uri}")
    if credentials.qop is None:
        # RFC 2069 compatibility: no client nonce, no count.
        return _md5(f"{ha1}:{credentials.nonce}:{ha2}")
    if credentials.qop.lower() != "auth" or not credentials.nc or not credentials.cnonce:
        return None
    parts = (ha1, credentials.nonce, credentials.nc, credentials.cnonce, "auth", ha2)
    return _md5(":".join(parts))


def verify(credentials: DigestCredentials, method: str, password: str) -> bool:
    """Whether the credentials prove `password` for `method` (constant-time comparison)."""
    expected = digest_response(credentials, method, password)
    if expected is None:
        return False
    return hmac.compare_digest(expected.encode(), credentials.response.lower().encode())


NonceState = Literal["fresh", "stale", "unknown"]


class NonceStore:
    """Nonces this side issued: random per challenge, fresh for `ttl` seconds, counts single-use.

    An expired nonce is remembered as stale for another `ttl` (so the client is told
    `stale=true` and retries without prompting), then forgotten: unknown. At most `limit`
    nonces are kept; the oldest go first.
    """

    def __init__(
        self,
        ttl: float = 300.0,
        *,
        limit: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.limit = limit
        self.clock = clock
        # nonce -> (issued at, highest nonce-count accepted)
        self._issued: dict[str, tuple[float, int]] = {}

    def issue(self) -> str:
        """A new random nonce."""
        self._purge()
        while len(self._issued) >= self.limit:
            del self._issued[next(iter(self._issued))]
        nonce = secrets.token_hex(16)
        self._issued[nonce] = (self.clock(), 0)
        return nonce

    def state(self, nonce: str) -> NonceState:
        """Whether the nonce is fresh, stale (expired) or unknown."""
        self._purge()
        issued = self._issued.get(nonce)
        if issued is None:
            return "unknown"
        return "fresh" if self.clock() - issued[0] < self.ttl else "stale"

    def use(self, nonce: str, nc: str | None) -> bool:
        """Record a use with nonce-count `nc`; False if fresh no more or the count is replayed."""
        if self.state(nonce) != "fresh":
            return False
        try:
            # No qop means no count: such a nonce is good for one request only.
            count = int(nc, 16) if nc is not None else 1
        except ValueError:
            return False
        issued, highest = self._issued[nonce]
        if count <= highest:
            return False
        self._issued[nonce] = (issued, count)
        return True

    def _purge(self) -> None:
        horizon = self.clock() - 2 * self.ttl
        for nonce in [n for n, (at, _) in self._issued.items() if at <= horizon]:
            del self._issued[nonce]
