"""The OpenAPI contract, rendered deterministically for openapi/openapi.json."""

from __future__ import annotations

import json

from app.main import create_app
from app.settings import Settings


def render() -> str:
    """The contract as stable, pretty JSON."""
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
