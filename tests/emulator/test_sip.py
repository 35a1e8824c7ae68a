"""SIP messages, URIs and digest: what the gateway reads from JsSIP 3.13.8 and writes back.

The messages below are JsSIP's own output (captured from jssip 3.13.8 talking to the gateway),
with the Via transport as it is over wss://.
"""

from __future__ import annotations

import pytest

from app.emulator import sip
from app.emulator.sip import Request, Response, SipError


def wire(*lines: str, body: str = "") -> str:
    """Header lines joined the way they travel: CRLF, a blank line, the body."""
    return "\r\n".join(lines) + "\r\n\r\n" + body


CONTACT = (
    "<sip:70e5re9c@icecl20aem6k.invalid;transport=ws>;+sip.ice;reg-id=1;"
    '+sip.instance="<urn:uuid:3d0990d7-ab13-44b0-9386-7523375c1bd4>";expires=600'
)
ALLOW = "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY,SUBSCRIBE"
AGENT = "User-Agent: JsSIP 3.13.8"

REGISTER = wire(
    "REGISTER sip:calltrack.emulator SIP/2.0",
    "Via: SIP/2.0/WSS icecl20aem6k.invalid;branch=z9hG4bK7081806",
    "Max-Forwards: 69",
    "To: <sip:wtc-3f2a9c0d1e4b5a6c7d8e@calltrack.emulator>",
    "From: <sip:wtc-3f2a9c0d1e4b5a6c7d8e@calltrack.emulator>;tag=t8q303jga6",
    "Call-ID: cggp0himp0ps6quaf0nors",
    "CSeq: 1 REGISTER",
    "Expires: 600",
    f"Contact: {CONTACT}",
    ALLOW,
    "Supported: path,gruu,outbound",
    AGENT,
    "Content-Length: 0",
)

# JsSIP's answer to the challenge below; `response` recomputed by hand with md5sum:
#   HA1 = md5("wtc-3f2a9c0d1e4b5a6c7d8e:calltrack.emulator:Xq7-vR2p_Lk9sT4wZ1yB3nM8")
#       = 3e956c4a55786a05d959552d55b8fa72
#   HA2 = md5("REGISTER:sip:calltrack.emulator") = 5190491a39a26dd97e5191f5a1d5af8b
#   md5("HA1:5f0c2d7e9a1b3c4d5e6f708192a3b4c5:00000001:k3b9x2m7q1z8:auth:HA2")
#       = da513be11c0b71ee203f06faf9f28ae7
USERNAME = "wtc-3f2a9c0d1e4b5a6c7d8e"
PASSWORD = "Xq7-vR2p_Lk9sT4wZ1yB3nM8"
AUTHORIZATION = (
    'Digest algorithm=MD5, username="wtc-3f2a9c0d1e4b5a6c7d8e", realm="calltrack.emulator", '
    'nonce="5f0c2d7e9a1b3c4d5e6f708192a3b4c5", uri="sip:calltrack.emulator", '
    'response="da513be11c0b71ee203f06faf9f28ae7", qop=auth, cnonce="k3b9x2m7q1z8", nc=00000001'
)

OFFER = (
    "v=0\r\n"
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=mid:0\r\n"
    "a=sendrecv\r\n"
    "a=rtpmap:111 opus/48000/2\r\n"
)
INVITE = wire(
    "INVITE sip:web-s1@calltrack.emulator SIP/2.0",
    "Via: SIP/2.0/WSS i9qvl26hvgqt.invalid;branch=z9hG4bK2490193",
    "Max-Forwards: 69",
    "To: <sip:web-s1@calltrack.emulator>",
    "From: <sip:wtc-abc@calltrack.emulator>;tag=og7vh6vn4k",
    "Call-ID: b0mittu0g92gg9bp9shm",
    "CSeq: 8108 INVITE",
    'Proxy-Authorization: Digest algorithm=MD5, username="wtc-abc", '
    'realm="calltrack.emulator", nonce="884d02c94572fffb4c18dc0b7a976d9e", '
    'uri="sip:web-s1@calltrack.emulator", response="18e233a08f828c26e32388f7799fe392", '
    'qop=auth, cnonce="cte0okahj6v2", nc=00000001',
    "X-Calltrack-Session: s1",
    "Contact: <sip:33dlk7pn@i9qvl26hvgqt.invalid;transport=ws;ob>",
    "Content-Type: application/sdp",
    "Session-Expires: 90",
    ALLOW,
    "Supported: timer,ice,replaces,outbound",
    AGENT,
    "Content-Length: 182",
    body=OFFER,
)
ACK = wire(
    "ACK sip:web-s1@calltrack.emulator SIP/2.0",
    "Via: SIP/2.0/WSS i9qvl26hvgqt.invalid;branch=z9hG4bK1690930",
    "Max-Forwards: 69",
    "To: <sip:web-s1@calltrack.emulator>;tag=eec2c39b65fd",
    "From: <sip:wtc-abc@calltrack.emulator>;tag=og7vh6vn4k",
    "Call-ID: b0mittu0g92gg9bp9shm",
    "CSeq: 8108 ACK",
    ALLOW,
    "Supported: outbound",
    AGENT,
    "Content-Length: 0",
)
BYE = wire(
    "BYE sip:web-s1@calltrack.emulator SIP/2.0",
    "Via: SIP/2.0/WSS i9qvl26hvgqt.invalid;branch=z9hG4bK8716212",
    "Max-Forwards: 69",
    "To: <sip:web-s1@calltrack.emulator>;tag=eec2c39b65fd",
    "From: <sip:wtc-abc@calltrack.emulator>;tag=og7vh6vn4k",
    "Call-ID: b0mittu0g92gg9bp9shm",
    "CSeq: 8109 BYE",
    ALLOW,
    "Supported: outbound",
    AGENT,
    "Content-Length: 0",
)
CANCEL = wire(
    "CANCEL sip:web-s1@calltrack.emulator SIP/2.0",
    "Via: SIP/2.0/WSS i9qvl26hvgqt.invalid;branch=z9hG4bK2490193",
    "Max-Forwards: 69",
    "To: <sip:web-s1@calltrack.emulator>",
    "From: <sip:wtc-abc@calltrack.emulator>;tag=og7vh6vn4k",
    "Call-ID: b0mittu0g92gg9bp9shm",
    "CSeq: 8108 CANCEL",
    ALLOW,
    "Supported: outbound",
    AGENT,
    "Content-Length: 0",
)


def request(text: str) -> Request:
    """Parse text that must be a request."""
    parsed = sip.parse(text)
    assert isinstance(parsed, Request)
    return parsed


# --- parsing -------------------------------------------------------------------------------


def test_parses_a_jssip_register() -> None:
    register = request(REGISTER)
    assert (register.method, register.uri) == ("REGISTER", "sip:calltrack.emulator")
    assert register.call_id == "cggp0himp0ps6quaf0nors"
    assert register.cseq == (1, "REGISTER")
    assert register.branch == "z9hG4bK7081806"
    assert register.from_tag == "t8q303jga6"
    assert register.to_tag is None
    assert register.headers.get("contact") == CONTACT
    assert register.headers.get("USER-AGENT") == "JsSIP 3.13.8"
    assert register.headers.get("Supported") == "path,gruu,outbound"
    assert register.body == ""
    contact = sip.parse_name_addr(CONTACT)
    assert contact.uri == "sip:70e5re9c@icecl20aem6k.invalid;transport=ws"
    assert contact.params["+sip.instance"] == "<urn:uuid:3d0990d7-ab13-44b0-9386-7523375c1bd4>"
    assert contact.params["expires"] == "600"
    assert contact.params["+sip.ice"] is None


def test_parses_an_invite_with_its_sdp_offer() -> None:
    invite = request(INVITE)
    assert invite.body == OFFER
    assert len(OFFER.encode()) == 182
    assert invite.content_type == "application/sdp"
    assert invite.headers.get("X-Calltrack-Session") == "s1"
    assert invite.headers.get("x-calltrack-session") == "s1"
    assert ("X-Calltrack-Session", "s1") in list(invite.headers)
    credentials = sip.parse_authorization(invite.headers.get("Proxy-Authorization") or "")
    assert credentials is not None
    assert (credentials.username, credentials.uri) == ("wtc-abc", "sip:web-s1@calltrack.emulator")
    assert sip.user_of(invite.uri) == "web-s1"
    assert sip.user_of(invite.headers.get("From") or "") == "wtc-abc"


def test_parses_ack_bye_and_cancel() -> None:
    ack, bye, cancel, invite = request(ACK), request(BYE), request(CANCEL), request(INVITE)
    assert ack.cseq == (8108, "ACK")
    assert ack.to_tag == bye.to_tag == "eec2c39b65fd"
    assert bye.cseq == (8109, "BYE")
    assert bye.from_tag == invite.from_tag
    # A CANCEL names the INVITE it cancels: same branch, same CSeq number.
    assert cancel.branch == invite.branch
    assert cancel.cseq == (invite.cseq[0], "CANCEL")
    assert cancel.to_tag is None


def test_compact_names_are_expanded_and_lookups_ignore_case() -> None:
    text = wire(
        "OPTIONS sip:calltrack.emulator SIP/2.0",
        "v: SIP/2.0/WSS a.invalid;branch=z9hG4bK1",
        "f: <sip:wtc-abc@calltrack.emulator>;tag=1",
        "t: <sip:calltrack.emulator>",
        "i: compact-1",
        "CSEQ: 7 OPTIONS",
        "m: <sip:x@a.invalid;transport=ws>",
        "k: outbound",
        "s: hello",
        "c: text/plain",
        "l: 2",
        body="hi",
    )
    options = request(text)
    names = [name for name, _ in options.headers]
    expected = ["Via", "From", "To", "Call-ID", "CSEQ", "Contact", "Supported", "Subject"]
    assert names == [*expected, "Content-Type", "Content-Length"]
    assert options.call_id == "compact-1"
    assert options.headers.get("I") == options.headers.get("call-id") == "compact-1"
    assert options.cseq == (7, "OPTIONS")
    assert options.body == "hi"
    assert "Call-ID: compact-1\r\n" in options.serialise()


def test_several_vias_in_lines_and_lists() -> None:
    text = wire(
        "BYE sip:x@a.invalid SIP/2.0",
        "Via: SIP/2.0/WSS proxy.example;branch=z9hG4bKtop, SIP/2.0/WSS b.invalid;branch=z9hG4bKb",
        "Via: SIP/2.0/WSS c.invalid;branch=z9hG4bKc",
        "From: <sip:a@b>;tag=1",
        "To: <sip:c@d>;tag=2",
        "Call-ID: vias",
        "CSeq: 2 BYE",
    )
    bye = request(text)
    assert [sip.via_branch(via) for via in bye.vias] == ["z9hG4bKtop", "z9hG4bKb", "z9hG4bKc"]
    assert bye.branch == "z9hG4bKtop"
    assert bye.body == ""
    copied = sip.response_to(bye, 200)
    assert copied.headers.get_all("Via") == bye.headers.get_all("Via")


def test_folded_lines_leading_crlf_and_bare_lf_are_tolerated() -> None:
    text = (
        "\r\n\r\nOPTIONS sip:calltrack.emulator SIP/2.0\n"
        "Via: SIP/2.0/WSS a.invalid\n ;branch=z9hG4bK1\n"
        "Subject: a long\n\tsubject\n"
        "Call-ID: lf\n\n"
    )
    options = request(text)
    assert options.branch == "z9hG4bK1"
    assert options.headers.get("Subject") == "a long subject"


def test_content_length_counts_bytes_and_delimits_the_body() -> None:
    body = "v=0\r\ns=caf\u00e9\r\n"
    text = wire("INVITE sip:x@y SIP/2.0", "Call-ID: b", f"Content-Length: {len(body.encode())}")
    assert request(text + body + "trailing junk").body == body
    message = Request("MESSAGE", "sip:x@y", sip.Headers([("Content-Length", "999")]), body)
    serialised = message.serialise()
    assert serialised.endswith(f"Content-Length: {len(body.encode())}\r\n\r\n{body}")
    assert "999" not in serialised
    assert len(body.encode()) == len(body) + 1


def test_a_frame_without_content_length_keeps_its_body() -> None:
    assert request(wire("INFO sip:x@y SIP/2.0", "Call-ID: n", body="abc")).body == "abc"


def test_parses_responses() -> None:
    text = wire(
        "SIP/2.0 487 Request Terminated",
        "Via: SIP/2.0/WSS a.invalid;branch=z9hG4bK1",
        "To: <sip:web-s1@calltrack.emulator>;tag=x",
        "CSeq: 3 INVITE",
    )
    response = sip.parse(text)
    assert isinstance(response, Response)
    assert (response.status, response.reason, response.to_tag) == (487, "Request Terminated", "x")
    assert response.cseq == (3, "INVITE")
    bare = sip.parse("SIP/2.0 200\r\nCall-ID: x\r\n\r\n")
    assert isinstance(bare, Response)
    assert (bare.status, bare.reason) == (200, "")


def test_serialise_round_trips_with_crlf() -> None:
    for text in (REGISTER, INVITE, ACK, BYE, CANCEL):
        parsed = sip.parse(text)
        serialised = parsed.serialise()
        assert serialised == text
        assert "\n" not in serialised.replace("\r\n", "")
        assert sip.parse(serialised) == parsed


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("HTTP/1.1 200 OK\r\n\r\n", "start line"),
        ("INVITE sip:x@y SIP/3.0\r\n\r\n", "start line"),
        ("INVITE sip:x@y SIP/2.0\r\nNoColon\r\n\r\n", "colon"),
        ("INVITE sip:x@y SIP/2.0\r\n folded\r\n\r\n", "continuation"),
        ("INVITE sip:x@y SIP/2.0\r\nBad Name: x\r\n\r\n", "header name"),
        ("INVITE sip:x@y SIP/2.0\r\nContent-Length: 10\r\n\r\nshort", "shorter"),
        ("INVITE sip:x@y SIP/2.0\r\nContent-Length: ten\r\n\r\n", "not a number"),
        ("INVITE sip:x@y SIP/2.0\r\nContent-Length: 1\r\n\r\n\u00e9", "splits"),
        ("INVITE sip:x@y SIP/2.0\r\nX-A: a\x00b\r\n\r\n", "control"),
    ],
)
def test_malformed_messages_are_refused(text: str, problem: str) -> None:
    with pytest.raises(SipError, match=problem):
        sip.parse(text)


def test_oversized_and_non_utf8_messages_are_refused() -> None:
    with pytest.raises(SipError, match="larger"):
        sip.parse(b"OPTIONS sip:x SIP/2.0\r\n\r\n" + b"a" * 100, max_size=64)
    with pytest.raises(SipError, match="UTF-8"):
        sip.parse(b"OPTIONS sip:x SIP/2.0\r\nSubject: \xff\r\n\r\n")


def test_header_values_cannot_inject_lines() -> None:
    headers = sip.Headers()
    with pytest.raises(SipError):
        headers.add("X-Evil", "a\r\nVia: forged")
    with pytest.raises(SipError):
        headers.add("X Evil", "a")
    headers.add("X-A", "1")
    headers.add("x-a", "2")
    headers.set("X-A", "3")
    assert headers.get_all("x-a") == ["3"]
    headers.remove("X-A")
    assert "X-A" not in headers
    assert len(headers) == 0


# --- URIs and name-addrs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "user", "host", "port", "params"),
    [
        ("sip:web-s1@calltrack.emulator", "web-s1", "calltrack.emulator", None, {}),
        (
            "sip:70e5re9c@IceCl20aem6k.invalid;transport=ws;ob",
            "70e5re9c",
            "icecl20aem6k.invalid",
            None,
            {"transport": "ws", "ob": None},
        ),
        ("sip:calltrack.emulator", None, "calltrack.emulator", None, {}),
        (
            "SIPS:%2B15550001111:secret@pbx.example:5061?subject=x",
            "+15550001111",
            "pbx.example",
            5061,
            {},
        ),
        ("sip:alice@[::1]:5060;lr", "alice", "[::1]", 5060, {"lr": None}),
    ],
)
def test_parse_uri(
    text: str, user: str | None, host: str, port: int | None, params: dict[str, str | None]
) -> None:
    uri = sip.parse_uri(text)
    assert (uri.user, uri.host, uri.port, uri.params) == (user, host, port, params)
    assert uri.scheme in ("sip", "sips")


@pytest.mark.parametrize(
    "text", ["tel:+15550001111", "mailto:a@b", "sip:", "sip:a@host:port", "sip:[::1"]
)
def test_parse_uri_refuses_what_is_not_sip(text: str) -> None:
    with pytest.raises(SipError):
        sip.parse_uri(text)


@pytest.mark.parametrize(
    ("text", "display", "uri", "params"),
    [
        (
            '"Visitor, \\"web\\"" <sip:wtc-abc@calltrack.emulator>;tag=og7vh6vn4k',
            'Visitor, "web"',
            "sip:wtc-abc@calltrack.emulator",
            {"tag": "og7vh6vn4k"},
        ),
        ("Bob <sip:bob@pbx.example;transport=ws>", "Bob", "sip:bob@pbx.example;transport=ws", {}),
        ("<sip:web-s1@calltrack.emulator>", None, "sip:web-s1@calltrack.emulator", {}),
        # Without brackets the parameters are the header's, not the URI's.
        ("sip:alice@pbx.example;tag=88sja8x", None, "sip:alice@pbx.example", {"tag": "88sja8x"}),
    ],
)
def test_parse_name_addr(
    text: str, display: str | None, uri: str, params: dict[str, str | None]
) -> None:
    addr = sip.parse_name_addr(text)
    assert (addr.display, addr.uri, addr.params) == (display, uri, params)
    assert addr.tag == params.get("tag")


def test_user_and_host_helpers_take_uris_and_name_addrs() -> None:
    assert sip.user_of('"A" <sip:wtc-abc@CallTrack.Emulator>;tag=1') == "wtc-abc"
    assert sip.host_of('"A" <sip:wtc-abc@CallTrack.Emulator>;tag=1') == "calltrack.emulator"
    assert sip.user_of("sip:web-s1@calltrack.emulator") == "web-s1"
    assert sip.user_of("<sip:calltrack.emulator>") is None
    with pytest.raises(SipError):
        sip.parse_name_addr("<sip:a@b")


def test_with_param_sets_or_replaces_a_header_parameter() -> None:
    assert sip.with_param("<sip:a@b>", "tag", "x") == "<sip:a@b>;tag=x"
    assert sip.with_param("sip:a@b;tag=1", "tag", "2") == "<sip:a@b>;tag=2"
    assert sip.with_param('"A;B" <sip:a@b;lr>', "tag", "x") == '"A;B" <sip:a@b;lr>;tag=x'
    replaced = sip.with_param(CONTACT, "expires", "300")
    assert replaced == CONTACT.replace("expires=600", "expires=300")
    assert sip.with_param("<sip:a@b>", "lr", None) == "<sip:a@b>;lr"


def test_split_list_ignores_commas_in_quotes_and_brackets() -> None:
    value = '"Doe, J" <sip:a@b;x=1,2>, <sip:c@d>;q=0.5'
    assert sip.split_list(value) == ['"Doe, J" <sip:a@b;x=1,2>', "<sip:c@d>;q=0.5"]


# --- responses ------------------------------------------------------------------------------


def test_response_copies_the_transaction_headers_and_adds_a_to_tag() -> None:
    register = request(REGISTER)
    response = sip.response_to(register, 200, to_tag="srv1", headers=[("Contact", CONTACT)])
    text = response.serialise()
    assert text.startswith("SIP/2.0 200 OK\r\n")
    assert response.headers.get_all("Via") == register.headers.get_all("Via")
    assert response.headers.get("From") == register.headers.get("From")
    assert (
        response.headers.get("To") == "<sip:wtc-3f2a9c0d1e4b5a6c7d8e@calltrack.emulator>;tag=srv1"
    )
    assert response.call_id == register.call_id
    assert response.cseq == register.cseq
    assert response.headers.get("Contact") == CONTACT
    assert text.endswith("Content-Length: 0\r\n\r\n")
    # The next responses of a dialog keep the tag the request now carries.
    bye = request(BYE)
    assert sip.response_to(bye, 200, to_tag="other").to_tag == "eec2c39b65fd"
    random_tag = sip.response_to(register, 401).to_tag
    assert random_tag
    assert random_tag != sip.response_to(register, 401).to_tag


def test_100_trying_gets_no_tag_and_bodies_get_a_type() -> None:
    invite = request(INVITE)
    assert sip.response_to(invite, 100).to_tag is None
    assert sip.response_to(invite, 100).reason == "Trying"
    answer = sip.response_to(invite, 200, to_tag="t", body="v=0\r\n")
    assert answer.content_type == "application/sdp"
    assert answer.serialise().endswith("Content-Length: 5\r\n\r\nv=0\r\n")
    assert sip.response_to(invite, 487).reason == "Request Terminated"
    assert sip.response_to(invite, 499).reason == "Unknown"
    with pytest.raises(SipError):
        sip.response_to(invite, 486, "Busy\r\nX-Forged: 1")


# --- digest ---------------------------------------------------------------------------------


def test_challenge_is_md5_with_qop_auth() -> None:
    value = sip.challenge("calltrack.emulator", "abc")
    assert value == 'Digest realm="calltrack.emulator", nonce="abc", algorithm=MD5, qop="auth"'
    assert sip.challenge("r", "n", stale=True).endswith(", stale=true")


def test_parse_authorization_as_jssip_sends_it() -> None:
    credentials = sip.parse_authorization(AUTHORIZATION)
    assert credentials == sip.DigestCredentials(
        username=USERNAME,
        realm="calltrack.emulator",
        nonce="5f0c2d7e9a1b3c4d5e6f708192a3b4c5",
        uri="sip:calltrack.emulator",
        response="da513be11c0b71ee203f06faf9f28ae7",
        algorithm="MD5",
        qop="auth",
        nc="00000001",
        cnonce="k3b9x2m7q1z8",
    )
    assert "da513be1" not in repr(credentials)


@pytest.mark.parametrize(
    "value",
    [
        "Basic d3RjLWFiYzpzZWNyZXQ=",
        'Digest username="a", realm="r", nonce="n", uri="sip:r"',  # no response
        'Digest username="a", username="b", realm="r", nonce="n", uri="u", response="x"',
        "Digest garbage",
        "",
    ],
)
def test_parse_authorization_refuses_incomplete_or_foreign(value: str) -> None:
    assert sip.parse_authorization(value) is None


def test_verify_the_hand_computed_vector() -> None:
    credentials = sip.parse_authorization(AUTHORIZATION)
    assert credentials is not None
    assert sip.verify(credentials, "REGISTER", PASSWORD)
    assert not sip.verify(credentials, "REGISTER", PASSWORD + "x")
    assert not sip.verify(credentials, "INVITE", PASSWORD)
    for change in ("nc=00000002", 'cnonce="k3b9x2m7q1z9"', 'uri="sip:other"'):
        key = change.split("=")[0]
        tampered = ", ".join(
            change if part.strip().startswith(key + "=") else part.strip()
            for part in AUTHORIZATION.removeprefix("Digest ").split(",")
        )
        forged = sip.parse_authorization("Digest " + tampered)
        assert forged is not None
        assert not sip.verify(forged, "REGISTER", PASSWORD), change


def test_verify_without_qop_and_unsupported_variants() -> None:
    # md5("HA1:abc123nonce:" + md5("INVITE:sip:web-s1@calltrack.emulator")), by md5sum.
    plain = sip.DigestCredentials(
        username=USERNAME,
        realm="calltrack.emulator",
        nonce="abc123nonce",
        uri="sip:web-s1@calltrack.emulator",
        response="D345EFE7A82631DF58FA748AD6CD58C5",
    )
    assert sip.verify(plain, "INVITE", PASSWORD)
    credentials = sip.parse_authorization(AUTHORIZATION)
    assert credentials is not None
    for other in (
        sip.DigestCredentials(**{**vars(credentials), "algorithm": "SHA-256"}),
        sip.DigestCredentials(**{**vars(credentials), "qop": "auth-int"}),
        sip.DigestCredentials(**{**vars(credentials), "cnonce": None}),
        sip.DigestCredentials(**{**vars(credentials), "response": "z\u00e9"}),
    ):
        assert not sip.verify(other, "REGISTER", PASSWORD)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_nonces_are_random_fresh_then_stale_then_unknown() -> None:
    clock = Clock()
    store = sip.NonceStore(ttl=300.0, clock=clock)
    first, second = store.issue(), store.issue()
    assert first != second
    assert len(first) == 32
    assert store.state(first) == "fresh"
    assert store.state("not-issued") == "unknown"
    clock.now += 300.0
    assert store.state(first) == "stale"
    assert not store.use(first, "00000001")
    clock.now += 300.0
    assert store.state(first) == "unknown"


def test_nonce_counts_cannot_be_replayed() -> None:
    store = sip.NonceStore(clock=Clock())
    nonce = store.issue()
    assert store.use(nonce, "00000001")
    assert not store.use(nonce, "00000001")
    assert store.use(nonce, "00000003")
    assert not store.use(nonce, "00000002")
    assert not store.use(nonce, "zz")
    once = store.issue()
    assert store.use(once, None)
    assert not store.use(once, None)


def test_nonce_store_is_bounded() -> None:
    store = sip.NonceStore(limit=3, clock=Clock())
    issued = [store.issue() for _ in range(4)]
    assert store.state(issued[0]) == "unknown"
    assert all(store.state(nonce) == "fresh" for nonce in issued[1:])
