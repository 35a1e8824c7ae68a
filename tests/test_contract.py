"""The committed OpenAPI contract matches the code, and the CLI works."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.cli import main
from app.openapi import render
from tests.api.helpers import make_pool
from tests.support import ADMIN

ROOT = Path(__file__).resolve().parents[1]


def test_committed_openapi_matches_the_code() -> None:
    committed = (ROOT / "openapi" / "openapi.json").read_text()
    assert committed == render(), "openapi/openapi.json is stale: run `calltrack openapi`"


def test_contract_documents_the_public_endpoint_and_problems() -> None:
    spec = json.loads(render())
    post = spec["paths"]["/get_tracking_number"]["post"]
    assert post["operationId"] == "get_tracking_number"
    assert "application/problem+json" in post["responses"]["422"]["content"]
    assert "HTTPValidationError" not in json.dumps(post)


def test_openapi_check_flags_drift(tmp_path: Path) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text("{}")
    assert main(["openapi", "--output", str(stale), "--check"]) == 1
    assert main(["openapi", "--output", str(stale)]) == 0
    assert main(["openapi", "--output", str(stale), "--check"]) == 0


async def test_numbers_import_from_a_file(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    await make_pool(client, size=0)
    listing = tmp_path / "numbers.csv"
    listing.write_text("number,label\n+12565550101,ad 1\n# comment\n\n256-555-0102,ad 2\n")
    env = {"CALLTRACK_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "app.cli", "numbers", "import", str(listing)]
    command += ["--pool", "default"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
        )

    done = await asyncio.to_thread(run)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"pool": "default", "added": 2, "reactivated": 0}
    stats = (await client.get("/v1/pools/default/stats", headers=ADMIN)).json()
    assert stats["size"] == 2
    again = await asyncio.to_thread(run)
    assert again.returncode == 1
    assert "already in a pool" in again.stderr


def test_contract_documents_the_webhooks_and_the_calls_api() -> None:
    spec = json.loads(render())
    voice = spec["paths"]["/webhooks/cloudonix/voice"]
    assert set(voice) == {"get", "post"}
    assert "application/xml" in voice["post"]["responses"]["200"]["content"]
    body = voice["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(body)
    assert "CallSid" in body["application/json"]["schema"]["properties"]
    for path in ("/webhooks/cloudonix/session-update", "/webhooks/cloudonix/cdr"):
        assert "401" in spec["paths"][path]["post"]["responses"]
    assert spec["paths"]["/v1/calls"]["get"]["operationId"] == "list_calls"
    assert not [p for p in spec["paths"] if p.startswith("/emulator")]


def test_emulator_command_refuses_to_start_without_its_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.settings import get_settings

    for name in (
        "CALLTRACK_WEBHOOK_TOKEN",
        "CALLTRACK_EMULATOR_API_KEY",
        "CALLTRACK_CLOUDONIX_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    try:
        assert main(["emulator", "--port", "1"]) == 2
    finally:
        get_settings.cache_clear()
    assert "CALLTRACK_WEBHOOK_TOKEN" in capsys.readouterr().err


def test_contract_documents_callbacks() -> None:
    spec = json.loads(render())
    form = spec["paths"]["/callback"]["post"]
    assert form["operationId"] == "request_callback"
    assert {"200", "422", "429"} <= set(form["responses"])
    assert "/callback/{callback_id}" in spec["paths"]
    assert spec["paths"]["/v1/callbacks"]["get"]["operationId"] == "list_callbacks"
    assert "post" in spec["paths"]["/v1/callbacks/{callback_id}/cancel"]
    hooks = "/webhooks/cloudonix/callbacks/{attempt_id}"
    assert set(spec["paths"][f"{hooks}/dial-action"]) == {"get", "post"}
    assert "401" in spec["paths"][f"{hooks}/session-update"]["post"]["responses"]
