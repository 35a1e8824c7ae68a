"""The committed OpenAPI contract matches the code, and the CLI works."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx

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
