"""The WebRTC media peer: a tone out, frames counted in, over real ICE/DTLS/SRTP on loopback."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import subprocess
import sys
import textwrap
import time
from array import array
from collections.abc import AsyncIterator, Callable

import pytest

from app.emulator import media

if not media.available():  # pragma: no cover - the test extra installs aiortc
    pytest.skip("aiortc (the webrtc extra) is not installed", allow_module_level=True)

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from app.emulator.media import MediaError, MediaPeer, ToneTrack

# Bound for connecting and exchanging a few frames; a pair normally connects in well under 1 s.
CONNECT_TIMEOUT = 15.0
# Frames both sides must see: 25 frames is half a second of audio at 20 ms a frame.
ENOUGH_FRAMES = 25

# Frames of received audio kept to measure the tone's frequency: half a second.
HEARD_FRAMES = 25

# Candidates Chromium adds beside its loopback UDP one: a TCP candidate on port 9, an mDNS
# name, and a host candidate of another interface. None of them may reach aioice.
CHROMIUM_EXTRAS = [
    "a=candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active generation 0",
    "a=candidate:3 1 udp 2122260223 4f1c7c1e-0d2a-4c5e-9a57-3f5b1a2c9d10.local 50000 typ host",
    "a=candidate:4 1 udp 2122194687 10.11.12.13 50001 typ host generation 0",
]


def pcm(frame: av.AudioFrame) -> array[int]:
    """The frame's samples as signed 16-bit integers, channels interleaved (packed s16)."""
    assert frame.format.name == "s16"
    samples = array("h")
    # The plane's buffer may be padded past the last sample.
    samples.frombytes(bytes(frame.planes[0])[: frame.samples * 2 * len(frame.layout.channels)])
    return samples


def sign_changes(samples: array[int]) -> int:
    """How many times consecutive samples change sign: twice the frequency of a sine per second."""
    return sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))


# An offer shaped like Chromium's (audio only, BUNDLE, Opus first, a TCP candidate on port 9,
# an mDNS name); its fingerprint and credentials are made up, so it only gets as far as an answer.
CHROMIUM_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS 5d3c2f1e",
        "m=audio 50000 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "c=IN IP4 127.0.0.1",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=candidate:1 1 udp 2113937151 127.0.0.1 50000 typ host generation 0 network-cost 999",
        *CHROMIUM_EXTRAS,
        "a=ice-ufrag:Wq3x",
        "a=ice-pwd:b8Hc2nQm4VtKpL0sYd7RfEz1",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 " + ":".join(f"{n:02X}" for n in range(32)),
        "a=setup:actpass",
        "a=mid:0",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=sendrecv",
        "a=msid:5d3c2f1e 0b7e9a44",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:13 CN/8000",
        "a=rtpmap:110 telephone-event/48000",
        "a=rtpmap:126 telephone-event/8000",
        "a=ssrc:1001 cname:q9XcV2kP",
        "a=ssrc:1001 msid:5d3c2f1e 0b7e9a44",
        "",
    ]
)


class Browser:
    """The visitor's side, played by a plain aiortc peer: offers Opus, sends its own tone."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.tone = ToneTrack(frequency=660.0)
        self.frames_received = 0
        # The first channel of the latest frames heard, to check what the media peer plays.
        self.heard: collections.deque[array[int]] = collections.deque(maxlen=HEARD_FRAMES)
        self._tasks: set[asyncio.Task[None]] = set()
        self.pc.addTrack(self.tone)
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        task = asyncio.get_running_loop().create_task(self._count(track))
        self._tasks.add(task)

    async def _count(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.frames_received += 1
                assert isinstance(frame, av.AudioFrame)
                self.heard.append(pcm(frame)[:: len(frame.layout.channels)])

    async def offer(self, extra_candidates: list[str] | None = None) -> str:
        """A complete offer (candidates included, like JsSIP sends), with extra candidates."""
        with media.loopback_gathering():
            await self.pc.setLocalDescription(await self.pc.createOffer())
        assert self.pc.localDescription is not None
        sdp = self.pc.localDescription.sdp
        if extra_candidates:
            lines = sdp.splitlines()
            at = max(i for i, line in enumerate(lines) if line.startswith("a=candidate:")) + 1
            sdp = "\r\n".join(lines[:at] + extra_candidates + lines[at:]) + "\r\n"
        return sdp

    async def accept(self, answer_sdp: str) -> None:
        """Apply the media peer's answer."""
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))

    async def close(self) -> None:
        """Stop counting and close the connection."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.tone.stop()
        await self.pc.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A browser-like offerer, closed after the test."""
    peer = Browser()
    yield peer
    async with asyncio.timeout(5):
        await peer.close()


@pytest.fixture
async def peer() -> AsyncIterator[MediaPeer]:
    """A loopback-only media peer, closed after the test."""
    answerer = MediaPeer(loopback_only=True)
    yield answerer
    async with asyncio.timeout(5):
        await answerer.close()


async def wait_until(condition: Callable[[], bool], *, within: float = CONNECT_TIMEOUT) -> None:
    """Poll until the condition holds, failing after `within` seconds."""
    # Frame counters offer nothing to await; 50 ms between looks leaves the CPU to the codecs.
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


def candidates(sdp: str) -> list[list[str]]:
    """The fields of each a=candidate line."""
    return [
        line[len("a=candidate:") :].split()
        for line in sdp.splitlines()
        if line.startswith("a=candidate:")
    ]


# --- the tone ----------------------------------------------------------------------------


def test_tone_frames_are_20ms_of_48khz_mono_with_increasing_pts() -> None:
    tone = ToneTrack()
    frames = [tone.next_frame() for _ in range(10)]
    for index, frame in enumerate(frames):
        assert frame.samples == 960
        assert frame.sample_rate == 48000
        assert frame.format.name == "s16"
        assert frame.layout.name == "mono"
        assert frame.pts == index * 960
        assert frame.time_base is not None
        assert frame.time_base.numerator == 1
        assert frame.time_base.denominator == 48000


@pytest.mark.parametrize("frequency", [440.0, 1000.0, 441.3])
def test_tone_is_a_sine_of_its_frequency(frequency: float) -> None:
    tone = ToneTrack(frequency=frequency)
    samples: array[int] = array("h")
    for _ in range(50):  # one second
        samples.extend(pcm(tone.next_frame()))
    assert len(samples) == 48000
    # A sine of f Hz changes sign 2f times a second; a frame seam that broke the phase would
    # add or drop crossings.
    crossings = sign_changes(samples)
    assert abs(crossings - 2 * frequency) <= 2
    peak = max(abs(s) for s in samples)
    assert 0.29 * 32767 <= peak <= 0.31 * 32767
    # A sine's RMS is its peak over sqrt(2): tells a sine from a square or a triangle.
    rms = (sum(s * s for s in samples) / len(samples)) ** 0.5
    assert abs(rms - peak / 2**0.5) < 0.01 * peak


async def test_tone_is_paced_in_real_time() -> None:
    tone = ToneTrack()
    started = time.monotonic()
    async with asyncio.timeout(5):
        for _ in range(11):  # the first is immediate, then 10 frames of 20 ms
            await tone.recv()
    elapsed = time.monotonic() - started
    assert 0.18 <= elapsed < 0.6
    assert tone.frames_sent == 11
    tone.stop()
    with pytest.raises(MediaStreamError):
        await tone.recv()


# --- candidates --------------------------------------------------------------------------


def test_only_loopback_udp_candidates_are_kept() -> None:
    offer = "\r\n".join(
        [
            "v=0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=candidate:1 1 udp 2113937151 127.0.0.1 54321 typ host generation 0",
            *CHROMIUM_EXTRAS,
            "a=candidate:5 1 UDP 2113937151 ::1 54322 typ host",
            "a=end-of-candidates",
        ]
    )
    kept, remaining = media.keep_loopback_candidates(offer)
    assert remaining == 1
    assert [fields[4] for fields in candidates(kept)] == ["127.0.0.1"]
    assert "m=audio 9 UDP/TLS/RTP/SAVPF 111" in kept
    assert "a=end-of-candidates" in kept


async def test_loopback_hook_is_scoped_to_its_context() -> None:
    import aioice.ice

    media.use_loopback_only()
    media.use_loopback_only()  # idempotent: still a single wrapper
    hook = aioice.ice.get_host_addresses
    with media.loopback_gathering():
        assert hook(True, True) == ["127.0.0.1"]

        # Tasks started inside inherit it: aiortc gathers in tasks of its own.
        async def lookup() -> list[str]:
            return hook(True, True)

        assert await asyncio.get_running_loop().create_task(lookup()) == ["127.0.0.1"]
    assert "127.0.0.1" not in hook(True, True)


def test_module_imports_without_aiortc() -> None:
    # A fresh interpreter that cannot see site-packages stands for an install without the
    # webrtc extra; media.py is loaded by path since app/emulator/__init__ needs FastAPI.
    code = textwrap.dedent(
        f"""
        import importlib.util, sys
        sys.path = [p for p in sys.path if "-packages" not in p]
        spec = importlib.util.spec_from_file_location("media", {media.__file__!r})
        media = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(media)
        assert not media.available()
        try:
            media.MediaPeer()
        except media.MediaError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "webrtc" in done.stdout


# --- the peer ----------------------------------------------------------------------------


async def test_audio_flows_both_ways_on_loopback(browser: Browser, peer: MediaPeer) -> None:
    started = time.monotonic()
    answer = await peer.answer(await browser.offer(CHROMIUM_EXTRAS))
    await browser.accept(answer)
    async with asyncio.timeout(CONNECT_TIMEOUT):
        await peer.connected.wait()
    connected = time.monotonic() - started
    assert peer.connection_state == "connected"
    await wait_until(
        lambda: peer.frames_received > ENOUGH_FRAMES and browser.frames_received > ENOUGH_FRAMES
    )
    assert peer.frames_sent > ENOUGH_FRAMES
    assert "opus/48000/2" in answer
    # What the visitor hears, decoded from Opus, is still the 440 Hz tone (half a second of it).
    heard: array[int] = array("h")
    for samples in browser.heard:
        heard.extend(samples)
    assert len(heard) == 48000 // 2
    assert abs(sign_changes(heard) - 440) <= 6
    print(f"connected in {connected:.2f} s, audio both ways {time.monotonic() - started:.2f} s")


async def test_answer_offers_only_loopback_udp_candidates(
    browser: Browser, peer: MediaPeer
) -> None:
    answer = await peer.answer(await browser.offer())
    found = candidates(answer)
    assert found
    assert all(fields[2].lower() == "udp" and fields[4] == "127.0.0.1" for fields in found)


async def test_chromium_shaped_offer_is_answered_with_opus(peer: MediaPeer) -> None:
    answer = await peer.answer(CHROMIUM_OFFER)
    audio = next(line for line in answer.splitlines() if line.startswith("m=audio"))
    assert audio.split()[3] == "111"  # Opus first
    assert "a=sendrecv" in answer
    assert "a=setup:active" in answer  # the offer's actpass: aiortc takes the DTLS client role
    found = candidates(answer)
    assert found
    assert all(fields[2].lower() == "udp" and fields[4] == "127.0.0.1" for fields in found)


async def test_offer_without_a_loopback_candidate_is_refused(
    browser: Browser, peer: MediaPeer
) -> None:
    offer = await browser.offer()
    remote_only = "\r\n".join(
        line for line in offer.splitlines() if not line.startswith("a=candidate:")
    )
    remote_only += "\r\n" + CHROMIUM_EXTRAS[2] + "\r\n"
    with pytest.raises(MediaError, match=r"127\.0\.0\.1"):
        await peer.answer(remote_only)


@pytest.mark.parametrize(
    "offer",
    [
        "garbage",
        "",
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "a=candidate:1 1 udp 2113937151 127.0.0.1 5000 typ host\r\n",
    ],
    ids=["garbage", "empty", "no-ice-credentials"],
)
async def test_malformed_offer_raises_media_error(offer: str) -> None:
    peer = MediaPeer()
    with pytest.raises(MediaError):
        await peer.answer(offer)
    assert peer.connection_state == "closed"
    await peer.close()


async def test_answer_is_bounded_in_time(browser: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(self: RTCPeerConnection, description: RTCSessionDescription) -> None:
        await asyncio.sleep(3600)

    offer = await browser.offer()  # before the patch: the browser must gather normally
    monkeypatch.setattr(RTCPeerConnection, "setLocalDescription", never)
    peer = MediaPeer(loopback_only=True, answer_timeout=0.2)
    with pytest.raises(MediaError, match="no answer within"):
        await peer.answer(offer)
    await peer.close()


async def test_close_twice_stops_counting(browser: Browser, peer: MediaPeer) -> None:
    offer = await browser.offer()
    await browser.accept(await peer.answer(offer))
    await wait_until(lambda: peer.frames_received > 5)
    await asyncio.gather(peer.close(), peer.close())
    await peer.close()
    assert peer.connection_state == "closed"
    received, sent = peer.frames_received, peer.frames_sent
    await asyncio.sleep(0.2)  # ten frames' time
    assert (peer.frames_received, peer.frames_sent) == (received, sent)
    with pytest.raises(MediaError, match="already answered or is closed"):
        await peer.answer(offer)
