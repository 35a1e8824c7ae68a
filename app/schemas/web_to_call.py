"""Public payloads of Web-To-Call (`POST /web_to_call`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.schemas.public import POOL_NAME_PATTERN, SESSION_ID_PATTERN


class WebCallRequest(BaseModel):
    """A visit asking to call from the browser."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"session_id": "Zk2x…", "pool": "default"}]},
    )

    session_id: Annotated[str, StringConstraints(pattern=SESSION_ID_PATTERN)]
    pool: Annotated[str, StringConstraints(pattern=POOL_NAME_PATTERN)] = "default"


class WebCallCredentials(BaseModel):
    """How to register and what to dial; the password is shown only in this answer."""

    status: Literal["success"] = "success"
    session_id: str
    websocket_url: str = Field(description="SIP over WebSocket (subprotocol `sip`).")
    uri: str = Field(description="The SIP identity to register as.")
    username: str
    password: str = Field(description="The SIP digest password; shown once.")
    realm: str
    dial: str = Field(description="The SIP URI to call.")
    headers: dict[str, str] = Field(description="Headers to add to the INVITE.")
    expires_at: datetime
    expires_in: int = Field(description="Seconds until the credentials stop working.")
