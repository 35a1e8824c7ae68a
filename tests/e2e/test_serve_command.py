"""The README's loop with the one command: `calltrack serve` on the embedded defaults."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

from tests.api.helpers import DESTINATION, lease, make_pool
from tests.calls.helpers import calls
from tests.e2e.live import BOUND
from tests.e2e.test_race_servers import free_port
from tests.support import ADMIN_TOKEN

ROOT = Path(__file__).resolve().parents[2]


async def test_serve_runs_the_whole_loop_with_the_built_in_emulator(tmp_path: Path) -> None:
    port = free_port()
    # Nothing but the database file, the admin token and a faster emulator: no webhook
    # token, no emulator address. `serve` must settle both itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTRACK_")}
    env |= {
        "CALLTRACK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'calltrack.db'}",
        "CALLTRACK_ADMIN_TOKEN": ADMIN_TOKEN,
        "CALLTRACK_EMULATOR_SPEED": "20",
        "CALLTRACK_LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "serve.log").open("wb")
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    server = await asyncio.create_subprocess_exec(
        *command, env=env, cwd=ROOT, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=BOUND) as client:

            async def up() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            for _ in range(300):  # at most 30 s
                if await up() or server.returncode is not None:
                    break
                await asyncio.sleep(0.1)
            assert server.returncode is None, (tmp_path / "serve.log").read_text()
            await make_pool(client, size=1)
            held = await lease(client, pool="default", context={"utm_source": "google"})
            answer = await client.post(
                "/emulator/inbound",
                json={"from": "+16175551212", "to": "+" + held["phonenumber"], "wait": True},
            )
            outcome = answer.json()
            assert outcome["dial"]["number"] == DESTINATION, outcome
            assert outcome["errors"] == []
            [call] = await calls(client)
            assert call["attribution"] == "dni"
            assert call["session_id"] == held["session_id"]
            assert call["status"] == "completed"
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(server.wait(), BOUND)
            except TimeoutError:
                server.kill()
                await asyncio.wait_for(server.wait(), BOUND)
        log.close()
