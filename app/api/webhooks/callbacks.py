"""Cloudonix's reports on callback calls: the agent leg's session updates, the customer's dial.

The worker gives each attempt its own URLs, so an event names its attempt in the path.
Authentication, domain check and body limits are the voice webhooks' own.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import StateDep
from app.api.webhooks.cloudonix import (
    CXML_RESPONSES,
    VOICE_BODY,
    XML,
    Accepted,
    authenticate,
    read_fields,
    session_updates,
    voice_request,
)
from app.errors import InvalidInput
from app.providers.voice import cxml
from app.providers.voice.cloudonix import map_status
from app.schemas.problem import problem_responses
from app.services import callbacks
from app.services.callback_events import AgentEvent, DialOutcome, on_agent_event, on_dial_result
from app.services.callback_flow import Policy
from app.state import AppState

router = APIRouter(prefix="/webhooks/cloudonix/callbacks", tags=["webhooks"])
log = logging.getLogger("calltrack.callbacks")

AttemptId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_RETRY_LATER = "The customer did not answer. We will try again later."
_GIVEN_UP = "The customer did not answer. This callback request is closed."


@router.post(
    "/{attempt_id}/session-update",
    response_model=Accepted,
    responses=problem_responses(401, 403, 422, 503),
    summary="Session updates of a callback's agent leg (one object or a list)",
)
async def callback_session_update(
    attempt_id: AttemptId, request: Request, state: StateDep, tasks: BackgroundTasks
) -> Accepted:
    """Move the callback on as its agent's phone rings, answers, or does not."""
    updates = await session_updates(request, state)
    policy = Policy.of(state.settings)
    for update in updates:
        event = AgentEvent(
            attempt_id=attempt_id,
            call_id=update.token,
            state=map_status(
                update.status,
                answered=bool(update.call_answer_time),
                ended=bool(update.call_end_time),
            ),
            answered=bool(update.call_answer_time),
        )
        async with state.sessionmaker() as db:
            hang_up = await on_agent_event(db, event, now=state.clock(), policy=policy)
            await db.commit()
        if hang_up is not None:
            tasks.add_task(callbacks.hang_up, state.voice, hang_up, reason="abandoned")
    return Accepted(received=len(updates), queued=0)


async def _dial_action(
    attempt_id: int, request: Request, state: AppState, tasks: BackgroundTasks
) -> Response:
    authenticate(request, state)
    voice = voice_request(await read_fields(request), state, request)
    status = (voice.dial_call_status or "").strip().lower()
    if not status:
        raise InvalidInput("DialCallStatus is required", field="DialCallStatus")
    try:
        async with state.sessionmaker() as db:
            result = await on_dial_result(
                db,
                attempt_id=attempt_id,
                call_id=voice.call_id,
                status=status,
                talk_seconds=voice.dial_call_duration or 0,
                now=state.clock(),
                policy=Policy.of(state.settings),
            )
            await db.commit()
    except (SQLAlchemyError, OSError):
        # The agent still gets an answer; the worker's check on the call settles it later.
        log.exception("callback dial result for attempt %d not stored", attempt_id)
        result = DialOutcome("ignored")
    if result.hang_up is not None:
        tasks.add_task(callbacks.hang_up, state.voice, result.hang_up, reason="abandoned")
    outcome = result.outcome
    doc = cxml.Response()
    if outcome == "retry":
        doc.say(_RETRY_LATER)
    elif outcome == "given_up":
        doc.say(_GIVEN_UP)
    return Response(doc.hangup().render(), media_type=XML)


@router.post(
    "/{attempt_id}/dial-action",
    response_class=Response,
    responses=CXML_RESPONSES,
    openapi_extra={"requestBody": VOICE_BODY},
    summary="The customer leg of a callback: how its <Dial> ended",
)
async def callback_dial_action(
    attempt_id: AttemptId, request: Request, state: StateDep, tasks: BackgroundTasks
) -> Response:
    """Complete the callback, or schedule a retry when the customer did not answer."""
    return await _dial_action(attempt_id, request, state, tasks)


@router.get(
    "/{attempt_id}/dial-action",
    response_class=Response,
    responses=CXML_RESPONSES,
    summary="The customer leg of a callback, parameters in the query string",
)
async def callback_dial_action_get(
    attempt_id: AttemptId, request: Request, state: StateDep, tasks: BackgroundTasks
) -> Response:
    """The same as the POST form, for `<Dial method="GET">`."""
    return await _dial_action(attempt_id, request, state, tasks)
