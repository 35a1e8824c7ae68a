"""<Dial>: ring a party per its script, whisper, bridge, then request the action URL."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urljoin
from xml.etree.ElementTree import Element

from app.emulator.models import CallEnded, DialRecord, Json, RingResult, Script, seconds

if TYPE_CHECKING:
    from app.emulator.player import Player

_RESULT: dict[str, RingResult] = {
    "answer": "answered",
    "busy": "busy",
    "failed": "failed",
    "no-answer": "no-answer",
}
# DialCallStatus as the action URL receives it; a bridged call that ended is "completed".
_DIAL_CALL_STATUS = {
    "answered": "completed",
    "busy": "busy",
    "no-answer": "no-answer",
    "failed": "failed",
}
_NOT_RECORDING = {"", "false", "do-not-record"}
_MAX_TALK = 14400.0


async def ring(player: Player, script: Script, ring_for: float) -> RingResult:
    """Ring a party: 'answered', 'busy', 'failed', or 'no-answer' after `ring_for` seconds."""
    if script.outcome == "no-answer" or script.answer_after > ring_for:
        await player.wait(ring_for)
        return "no-answer"
    await player.wait(script.answer_after)
    return _RESULT[script.outcome]


def _targets(verb: Element) -> list[tuple[str, str | None]]:
    """The parties a <Dial> rings: (number or SIP URI, whisper URL)."""
    targets = [
        ((noun.text or "").strip(), noun.get("url"))
        for noun in verb
        if noun.tag in ("Number", "Sip") and (noun.text or "").strip()
    ]
    bare = (verb.text or "").strip()
    if not targets and bare:
        targets.append((bare, None))
    return targets


def _pick(player: Player, targets: list[tuple[str, str | None]], timeout: float) -> int:
    """Of parties rung at once, the first to answer wins; if none would, the first listed."""
    scripts = [player.behaviour(number) for number, _ in targets]
    answering = [
        index
        for index, script in enumerate(scripts)
        if script.outcome == "answer" and script.answer_after <= timeout
    ]
    return min(answering, key=lambda index: scripts[index].answer_after) if answering else 0


async def _whisper(player: Player, url: str, number: str) -> None:
    """Fetch the <Number url> document and play its <Say>s to the dialled party only."""
    call = player.call
    extra: Json = {"DialedNumber": number, "ParentCallSid": call.token}
    absolute = urljoin(player.base_url, url)
    _, root = await player.http.fetch_cxml(call, absolute, extra=extra)
    if root is None:
        # Noted in errors; the parties are bridged all the same.
        return
    for verb in root:
        if verb.tag == "Say":
            await player.say(verb, call.whispered)
        elif verb.tag == "Pause":
            await player.wait(seconds(verb.get("length"), 1.0))


async def play_dial(player: Player, verb: Element) -> Element | None:
    """Play a <Dial>; the action URL's document when there is one, else None to go on."""
    call = player.call
    targets = _targets(verb)
    if not targets:
        call.errors.append("<Dial> without a number skipped")
        return None
    timeout = seconds(verb.get("timeout"), 30.0)
    time_limit = seconds(verb.get("timeLimit"), _MAX_TALK)
    number, whisper_url = targets[_pick(player, targets, timeout)]
    script = player.behaviour(number)
    dial = DialRecord(
        number=number,
        caller_id=verb.get("callerId") or call.from_,
        record=(verb.get("record") or "").strip().lower() not in _NOT_RECORDING,
    )
    call.dials.append(dial)
    if not call.answered:
        call.status = "ringing"
    await player.update("dial")
    await player.update("ringing")
    result = await ring(player, script, timeout)
    dial.status = result
    call.ring_status = result
    ended_by: str | None = None
    if result == "answered":
        if not call.answered:
            call.status = "connected"
        await player.update("connected")
        if whisper_url:
            await _whisper(player, whisper_url, number)
        # <Dial> answers the caller only now that the far end has picked up.
        await player.answer()
        await player.update("bridged")
        dial.talk = min(script.talk, time_limit)
        await player.wait(dial.talk)
        ended_by = "time-limit" if script.talk > time_limit else script.hangup_by
        if dial.record:
            call.recording_url = f"{call.emulator_url}/recordings/{call.token}.wav"
    await player.update("dial-ended", reason=ended_by or result)
    action = verb.get("action")
    if action:
        extra: Json = {
            "DialCallStatus": _DIAL_CALL_STATUS[result],
            "DialCallDuration": round(dial.talk),
            "DialCallSid": f"{call.token}-{len(call.dials)}",
        }
        if dial.record and result == "answered":
            extra["RecordingUrl"] = call.recording_url
        dial.action_status, following = await player.fetch(
            action, verb.get("method", "POST"), extra
        )
        if ended_by == "caller":
            # The caller is gone: the action is still told, but its answer is not played.
            raise CallEnded("caller")
        if following is None:
            raise CallEnded("webhook-error")
        return following
    if ended_by == "caller":
        raise CallEnded("caller")
    if ended_by == "callee":
        player.end_hint = "callee"
    return None
