"""Cloudonix's webhooks: the voice application, its dial action, session updates, CDRs.

Every handler authenticates first (a bearer token compared in constant time; nothing
configured means nothing accepted), checks the domain, and is idempotent. The voice
application answers CXML even when the database is down: a caller never hears silence.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ValidationError

from app.api.deps import StateDep, check_bearer
from app.errors import Forbidden, InvalidInput, WebhooksDisabled, invalid_input
from app.providers.voice import cxml
from app.providers.voice.base import CallState
from app.providers.voice.cloudonix import map_status
from app.schemas.cloudonix import Cdr, SessionUpdate, VoiceRequest
from app.schemas.problem import problem_responses
from app.services.calls import DialResult, InboundCall, Progress
from app.services.routing import Announce, Decision
from app.state import AppState

router = APIRouter(prefix="/webhooks/cloudonix", tags=["webhooks"])

MAX_BODY = 64 * 1024
XML = "application/xml"
_NOT_ANSWERED = "Sorry, nobody could take your call right now. Please try again later."
_DISPOSITIONS = {
    "ANSWER": CallState.COMPLETED,
    "ANSWERED": CallState.COMPLETED,
    "BUSY": CallState.BUSY,
    "NOANSWER": CallState.NO_ANSWER,
    "CANCEL": CallState.CANCELED,
    "FAILED": CallState.FAILED,
    "CONGESTION": CallState.FAILED,
}
VOICE_BODY = {
    "content": {
        "application/json": {"schema": VoiceRequest.model_json_schema(by_alias=True)},
        "application/x-www-form-urlencoded": {
            "schema": VoiceRequest.model_json_schema(by_alias=True)
        },
    }
}


def authenticate(request: Request, state: AppState) -> None:
    expected = state.webhook_token
    if expected is None:
        raise WebhooksDisabled("voice webhooks are disabled: set CALLTRACK_WEBHOOK_TOKEN")
    check_bearer(request, expected, what="webhook token", realm="calltrack-webhooks")


def check_domain(state: AppState, *claimed: str | None) -> None:
    given = [d for d in claimed if d]
    if not given:
        raise InvalidInput("Domain is required", field="Domain")
    ours = state.settings.voice_domain
    if any(d != ours for d in given):
        raise Forbidden("this service does not answer for that domain", field="Domain")


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise InvalidInput("body: larger than 64 KiB", field="body")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidInput("body: larger than 64 KiB", field="body")
    return body


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else None
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise InvalidInput("body: not valid JSON", field="body") from exc


async def read_fields(request: Request) -> dict[str, Any]:
    """The request's parameters, from the query (GET), a JSON body, or a form body."""
    if request.method == "GET":
        return dict(request.query_params)
    body = await read_body(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    parsed = parse_json(body)
    if isinstance(parsed, list) and len(parsed) == 1:
        parsed = parsed[0]
    if not isinstance(parsed, dict):
        raise InvalidInput("body: expected a JSON object", field="body")
    return parsed


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: object) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc) from exc


def voice_request(fields: dict[str, Any], state: AppState, request: Request) -> VoiceRequest:
    voice = parse_model(VoiceRequest, fields)
    if not voice.call_id:
        raise InvalidInput("CallSid (or Session) is required", field="CallSid")
    check_domain(state, voice.domain or voice.account_sid, request.headers.get("x-cx-domain"))
    return voice


def base_url_of(request: Request, state: AppState) -> str:
    return (state.settings.public_url or str(request.base_url)).rstrip("/")


def _render(decision: Decision, *, call_id: str, base: str) -> str:
    doc = cxml.Response()
    if isinstance(decision, Announce):
        return doc.say(decision.message).hangup().render()
    query = urlencode({"CallSid": call_id})
    doc.dial(
        decision.destination,
        caller_id=decision.caller_id,
        action=f"{base}{router.prefix}/dial-action",
        record=decision.record,
        whisper_url=f"{base}{router.prefix}/whisper?{query}" if decision.whisper else None,
    )
    return doc.render()


CXML_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {XML: {}}, "description": "CXML for the call"},
    **problem_responses(401, 403, 422, 503),
}


async def _voice(request: Request, state: AppState) -> Response:
    authenticate(request, state)
    voice = voice_request(await read_fields(request), state, request)
    call = InboundCall(
        call_id=voice.call_id,
        from_number=voice.from_ or "",
        to_number=voice.to,
        caller_name=voice.caller_name,
        direction=voice.direction,
        received_at=state.clock(),
        claimed_visit=voice.claimed_visit if voice.direction == "subscriber" else None,
    )
    decision = await state.desk.answer(call)
    body = _render(decision, call_id=call.call_id, base=base_url_of(request, state))
    return Response(body, media_type=XML, headers={"Cache-Control": "no-store"})


@router.post(
    "/voice",
    response_class=Response,
    responses=CXML_RESPONSES,
    openapi_extra={"requestBody": VOICE_BODY},
    summary="Cloudonix voice application: route and record an inbound call",
)
async def cloudonix_voice(request: Request, state: StateDep) -> Response:
    """Answer CXML that forwards the call; attribute and record it on the way."""
    return await _voice(request, state)


@router.get(
    "/voice",
    response_class=Response,
    responses=CXML_RESPONSES,
    summary="Cloudonix voice application, parameters in the query string",
)
async def cloudonix_voice_get(request: Request, state: StateDep) -> Response:
    """The same as the POST form, for a voice application configured with GET."""
    return await _voice(request, state)


async def _dial_action(request: Request, state: AppState) -> Response:
    authenticate(request, state)
    voice = voice_request(await read_fields(request), state, request)
    status = (voice.dial_call_status or "").strip().lower()
    if not status:
        raise InvalidInput("DialCallStatus is required", field="DialCallStatus")
    await state.desk.dial_result(
        DialResult(
            call_id=voice.call_id,
            status=status,
            received_at=state.clock(),
            from_number=voice.from_,
            to_number=voice.to,
            direction=voice.direction,
            dial_seconds=voice.dial_call_duration or 0,
        )
    )
    doc = cxml.Response()
    if status in {"busy", "no-answer", "noanswer", "failed"}:
        doc.say(_NOT_ANSWERED)
    return Response(doc.hangup().render(), media_type=XML)


@router.post(
    "/dial-action",
    response_class=Response,
    responses=CXML_RESPONSES,
    openapi_extra={"requestBody": VOICE_BODY},
    summary="Cloudonix <Dial action>: how the forwarded leg ended",
)
async def cloudonix_dial_action(request: Request, state: StateDep) -> Response:
    """Record the dial outcome; a caller nobody answered hears a short apology."""
    return await _dial_action(request, state)


@router.get(
    "/dial-action",
    response_class=Response,
    responses=CXML_RESPONSES,
    summary="Cloudonix <Dial action>, parameters in the query string",
)
async def cloudonix_dial_action_get(request: Request, state: StateDep) -> Response:
    """The same as the POST form, for `<Dial method="GET">`."""
    return await _dial_action(request, state)


@router.post(
    "/whisper",
    response_class=Response,
    responses=CXML_RESPONSES,
    summary="Whisper to the answering agent where the call came from",
)
async def cloudonix_whisper(request: Request, state: StateDep) -> Response:
    """CXML the agent hears before being connected: the call's source and campaign."""
    authenticate(request, state)
    call_id = request.query_params.get("CallSid", "")
    if not call_id or len(call_id) > 64:
        raise InvalidInput("CallSid is required", field="CallSid")
    text = await state.desk.whisper_text(call_id)
    return Response(cxml.Response().say(text).render(), media_type=XML)


class Accepted(BaseModel):
    """How many events were received, and how many wait for the database."""

    received: int
    queued: int


def on_our_clock(received_at: datetime, *times_ms: int | None) -> tuple[datetime | None, ...]:
    """The platform's times moved onto our clock.

    Leases carry our clock's times, so a call's times must too: the latest reported instant
    is taken as the moment we received the event, and the rest keep their distance from it.
    The platform's durations survive; its clock's error does not.
    """
    known = [t for t in times_ms if t]
    if not known:
        return tuple(None for _ in times_ms)
    anchor = max(known)
    return tuple(received_at - timedelta(milliseconds=anchor - t) if t else None for t in times_ms)


def _progress(update: SessionUpdate, received_at: datetime) -> Progress:
    # The adapter's reading of Cloudonix statuses, so both sides agree on what they mean.
    state = map_status(
        update.status, answered=bool(update.call_answer_time), ended=bool(update.call_end_time)
    )
    # Without an eventId the update is known by what it says, not by `id` (which may be
    # the same for every update of a session).
    key = update.event_id or (
        f"{update.status}:{update.call_answer_time or 0}:{update.call_end_time or 0}"
    )
    started, answered, ended = on_our_clock(
        received_at, update.call_start_time, update.call_answer_time, update.call_end_time
    )
    return Progress(
        call_id=update.token,
        event_key=f"su:{key}",
        kind="session",
        state=state,
        from_number=update.caller_id,
        to_number=update.destination,
        direction=update.direction,
        started_at=started,
        answered_at=answered,
        ended_at=ended,
        received_at=received_at,
    )


async def session_updates(request: Request, state: AppState) -> list[SessionUpdate]:
    """An authenticated request's session updates (one object or a list), all for our domain."""
    authenticate(request, state)
    parsed = parse_json(await read_body(request))
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items or len(items) > 100:
        raise InvalidInput("body: expected 1 to 100 session updates", field="body")
    updates = []
    for index, item in enumerate(items):
        try:
            updates.append(SessionUpdate.model_validate(item))
        except ValidationError as exc:
            raise invalid_input(exc, prefix=f"[{index}]." if len(items) > 1 else "") from exc
    for update in updates:
        check_domain(state, update.domain)
    return updates


@router.post(
    "/session-update",
    response_model=Accepted,
    responses=problem_responses(401, 403, 422, 503),
    summary="Cloudonix session updates (one object or a list)",
)
async def cloudonix_session_update(request: Request, state: StateDep) -> Accepted:
    """Move calls through ringing, answered and ended; repeats change nothing."""
    updates = await session_updates(request, state)
    queued = 0
    for update in updates:
        if not await state.desk.progress(_progress(update, state.clock())):
            queued += 1
    return Accepted(received=len(updates), queued=queued)


@router.post(
    "/cdr",
    response_model=Accepted,
    responses=problem_responses(401, 403, 422, 503),
    summary="Cloudonix call detail record, sent when a call ends",
)
async def cloudonix_cdr(request: Request, state: StateDep) -> Accepted:
    """Complete the call with its duration, talk time, disposition and recording."""
    authenticate(request, state)
    cdr = parse_model(Cdr, await read_fields(request))
    check_domain(state, cdr.domain)
    disposition = cdr.disposition.upper()
    if disposition not in _DISPOSITIONS:
        raise InvalidInput(f"disposition: unknown value {cdr.disposition!r}", field="disposition")
    received = state.clock()
    start_ms = cdr.session.call_start_time
    end_ms = cdr.session.call_end_time
    if not end_ms and start_ms:
        end_ms = start_ms + cdr.duration * 1000
    if end_ms and not start_ms:
        start_ms = end_ms - cdr.duration * 1000
    started, answered, ended = on_our_clock(
        received, start_ms, cdr.session.call_answer_time, end_ms
    )
    if started is None:  # no times at all: the CDR comes as the call ends
        ended = received
        started = received - timedelta(seconds=cdr.duration)
    event = Progress(
        call_id=cdr.session.token,
        event_key="cdr",
        kind="cdr",
        state=_DISPOSITIONS[disposition],
        from_number=cdr.from_,
        to_number=cdr.to,
        direction=cdr.session.direction or "inbound",
        started_at=started,
        answered_at=answered,
        ended_at=ended,
        received_at=received,
        talk_seconds=cdr.billsec,
        duration_seconds=cdr.duration,
        disposition=disposition,
        recording_url=cdr.recording_url,
    )
    queued = 0 if await state.desk.progress(event) else 1
    return Accepted(received=1, queued=queued)
