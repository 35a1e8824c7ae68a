"""The emulator's WebRTC media peer for Web-To-Call: answers a browser's offer with a tone.

One `MediaPeer` per call. It answers the visitor's SDP offer (from JsSIP, which does not
trickle, so the answer carries every candidate), plays a 440 Hz tone towards the visitor and
counts the audio frames it decodes from the visitor.

The module imports without aiortc (the optional `webrtc` extra): callers ask `available()`
first and refuse WebRTC calls clearly when it is False; `MediaPeer` raises `MediaError` then.

Loopback: aioice never offers 127.0.0.1 as a host candidate, so on a machine where the
browser and the emulator share loopback there would be nothing to connect. `use_loopback_only()`
installs (once, explicitly) a wrapper over aioice's host-address lookup; the wrapper answers
127.0.0.1 only while `loopback_gathering()` is active in the current context and defers to
aioice otherwise, so peers that did not ask keep aioice's normal behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fractions
import importlib.util
import logging
import math
from array import array
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

log = logging.getLogger(__name__)


def available() -> bool:
    """Whether the `webrtc` extra (aiortc) is installed, without importing it."""
    return importlib.util.find_spec("aiortc") is not None


# aiortc and av are imported only when installed, so that `available()` and `MediaError` stay
# importable without the extra. Type checkers always see the imports (the else branch is then
# unreachable for them, which is why it needs no ignore).
if TYPE_CHECKING or available():
    import av
    from aiortc import (
        RTCConfiguration,
        RTCPeerConnection,
        RTCSessionDescription,
    )
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
else:  # pragma: no cover - only without the webrtc extra
    MediaStreamTrack = object


class MediaError(Exception):
    """The offer could not be answered: malformed, unusable, timed out, or no aiortc."""


# --- loopback-only ICE ---------------------------------------------------------------------

LOOPBACK = "127.0.0.1"
# True while a peer gathers its candidates in loopback-only mode. A context variable rather
# than a global flag: aiortc gathers in tasks spawned from setLocalDescription, which inherit
# the caller's context, so only the peer that asked is affected.
_loopback_gathering: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "loopback_gathering", default=False
)


def use_loopback_only() -> None:
    """Install, once, the aioice hook that lets `loopback_gathering()` offer 127.0.0.1."""
    import aioice.ice

    current = aioice.ice.get_host_addresses
    if getattr(current, "_calltrack_loopback", False):
        return
    original: Callable[[bool, bool], list[str]] = current

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        if _loopback_gathering.get():
            return [LOOPBACK] if use_ipv4 else []
        return original(use_ipv4, use_ipv6)

    get_host_addresses._calltrack_loopback = True  # type: ignore[attr-defined]
    # aioice looks the function up in its module globals at each gathering, so replacing the
    # module attribute is enough (verified against aioice 0.13's Connection.gather_candidates).
    aioice.ice.get_host_addresses = get_host_addresses


@contextlib.contextmanager
def loopback_gathering() -> Iterator[None]:
    """Within this block (and tasks started in it), aioice gathers 127.0.0.1 only."""
    use_loopback_only()
    token = _loopback_gathering.set(True)
    try:
        yield
    finally:
        _loopback_gathering.reset(token)


def keep_loopback_candidates(sdp: str) -> tuple[str, int]:
    """The SDP without candidates other than 127.0.0.1 UDP, and how many candidates remain."""
    kept: list[str] = []
    remaining = 0
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ ..
            fields = line[len("a=candidate:") :].split()
            if len(fields) < 6 or fields[2].lower() != "udp" or fields[4] != LOOPBACK:
                continue
            remaining += 1
        kept.append(line)
    return "\r\n".join(kept) + "\r\n", remaining


# --- the tone ----------------------------------------------------------------------------

SAMPLE_RATE = 48000
FRAME_SECONDS = 0.020
# A stall longer than this (a busy event loop) restarts the pacing clock instead of sending a
# burst of late frames to catch up; pts keeps counting regardless.
MAX_LAG = 0.2
# Frames of tone precomputed when the tone repeats with a whole number of frames (440 Hz at
# 48 kHz in 20 ms frames repeats every 5 frames); longer cycles are computed frame by frame.
MAX_CACHED_FRAMES = 50


class ToneTrack(MediaStreamTrack):
    """An audio track of a sine tone: s16 mono frames, paced in real time."""

    kind = "audio"

    def __init__(
        self,
        frequency: float = 440.0,
        sample_rate: int = SAMPLE_RATE,
        frame_seconds: float = FRAME_SECONDS,
        amplitude: float = 0.3,
    ) -> None:
        super().__init__()
        self.frequency = frequency
        self.sample_rate = sample_rate
        self.samples_per_frame = round(sample_rate * frame_seconds)
        self.amplitude = amplitude
        self.time_base = fractions.Fraction(1, sample_rate)
        self.frames_sent = 0
        self._pts = 0
        self._start: float | None = None
        # Cycles per frame as an exact fraction: its denominator is the tone's period in frames.
        per_frame = fractions.Fraction(frequency) * self.samples_per_frame / sample_rate
        period = per_frame.limit_denominator(10**6).denominator
        self._cycle: list[bytes] = []
        if period <= MAX_CACHED_FRAMES:
            self._cycle = [self._pcm(i * self.samples_per_frame) for i in range(period)]

    def _pcm(self, first_sample: int) -> bytes:
        """Signed 16-bit native-endian samples of one frame starting at `first_sample`."""
        scale = self.amplitude * 32767
        step = self.frequency / self.sample_rate
        samples = array(
            "h",
            (
                # The phase is reduced to [0, 1) before scaling so it stays exact at any time.
                round(scale * math.sin(2 * math.pi * (((first_sample + n) * step) % 1.0)))
                for n in range(self.samples_per_frame)
            ),
        )
        return samples.tobytes()

    def next_frame(self) -> av.AudioFrame:
        """The next frame of tone, without waiting for its time."""
        if self._cycle:
            pcm = self._cycle[(self._pts // self.samples_per_frame) % len(self._cycle)]
        else:
            pcm = self._pcm(self._pts)
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.samples_per_frame)
        frame.planes[0].update(pcm)
        frame.pts = self._pts
        frame.sample_rate = self.sample_rate
        frame.time_base = self.time_base
        self._pts += self.samples_per_frame
        return frame

    async def recv(self) -> av.AudioFrame:
        """The next frame, once its time has come (aiortc's sender pulls at its own pace)."""
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._start is None:
            self._start = now
        due = self._start + self._pts / self.sample_rate
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > MAX_LAG:
            self._start = now - self._pts / self.sample_rate
        self.frames_sent += 1
        return self.next_frame()


# --- the peer ----------------------------------------------------------------------------

ANSWER_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0


class MediaPeer:
    """One call's media: answers an offer, plays a tone, counts the frames it receives."""

    def __init__(
        self,
        *,
        loopback_only: bool = False,
        frequency: float = 440.0,
        answer_timeout: float = ANSWER_TIMEOUT,
    ) -> None:
        if not available():
            raise MediaError("WebRTC media needs aiortc: install the 'webrtc' extra")
        self.loopback_only = loopback_only
        self.answer_timeout = answer_timeout
        self.frames_received = 0
        self.connected = asyncio.Event()
        self._tone = ToneTrack(frequency=frequency)
        self._pc: RTCPeerConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._close_task: asyncio.Task[None] | None = None
        if loopback_only:
            use_loopback_only()

    @property
    def frames_sent(self) -> int:
        """Tone frames handed to the encoder so far."""
        return self._tone.frames_sent

    @property
    def connection_state(self) -> str:
        """The peer connection's state ("new" before `answer`, "closed" after `close`)."""
        return "new" if self._pc is None else self._pc.connectionState

    async def answer(self, offer_sdp: str) -> str:
        """Answer the offer; the answer SDP carries all local candidates (no trickle)."""
        if self._pc is not None or self._close_task is not None:
            raise MediaError("this media peer has already answered or is closed")
        if self.loopback_only:
            offer_sdp, remaining = keep_loopback_candidates(offer_sdp)
            if remaining == 0:
                raise MediaError("the offer has no 127.0.0.1 UDP candidate")
        # No STUN server: aiortc's default one is on the internet, and waiting for it would
        # stall gathering; host candidates are all a local call needs.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._pc = pc
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_state)
        try:
            async with asyncio.timeout(self.answer_timeout):
                try:
                    await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
                except (ValueError, KeyError, IndexError) as exc:
                    raise MediaError(f"malformed offer: {exc}") from exc
                # aiortc accepts text with no media sections silently; without audio there is
                # nothing to answer.
                if not any(t.kind == "audio" for t in pc.getTransceivers()):
                    raise MediaError("the offer has no audio section")
                pc.addTrack(self._tone)
                answer = await pc.createAnswer()
                # setLocalDescription gathers candidates before returning.
                with loopback_gathering() if self.loopback_only else contextlib.nullcontext():
                    await pc.setLocalDescription(answer)
        except TimeoutError as exc:
            await self.close()
            raise MediaError(f"no answer within {self.answer_timeout:g} s") from exc
        except MediaError:
            await self.close()
            raise
        except Exception as exc:
            # aiortc signals unusable offers with its own exception types (InvalidAccessError,
            # InternalError, ...); callers need one type to turn into a SIP error.
            await self.close()
            raise MediaError(f"cannot answer the offer: {exc!r}") from exc
        local = pc.localDescription
        if local is None:  # pragma: no cover - setLocalDescription always sets it
            raise MediaError("no local description after answering")
        return local.sdp

    def _on_track(self, track: MediaStreamTrack) -> None:
        task = asyncio.get_running_loop().create_task(self._consume(track))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _consume(self, track: MediaStreamTrack) -> None:
        # Every remote track is drained (aiortc queues decoded frames without bound), but only
        # audio counts.
        counts = track.kind == "audio"
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                if counts:
                    self.frames_received += 1

    def _on_state(self) -> None:
        if self._pc is not None and self._pc.connectionState == "connected":
            self.connected.set()

    async def close(self) -> None:
        """Stop the tone and the counting and close the connection; later calls do nothing."""
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self._close())
        # Shielded: a caller cancelled while waiting must not leave the connection half-closed.
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        self._tone.stop()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.gather(*tasks, return_exceptions=True)
                if self._pc is not None:
                    await self._pc.close()
        except TimeoutError:
            log.warning("media peer: closing took over %g s, abandoned", CLOSE_TIMEOUT)
