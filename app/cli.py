"""The `calltrack` command: serve, worker, emulator, migrate, numbers import, openapi."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from app import logs
from app.settings import get_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.db import migrate

    settings = get_settings()
    logs.configure(settings.log_level)
    if settings.is_sqlite and not args.no_migrate:
        migrate.upgrade(settings.database_url)
    if settings.voice_provider == "emulator":
        # The adapter reaches the emulator mounted in this very server over real HTTP, and
        # every worker process must share one webhook token: both are settled here.
        host = "127.0.0.1" if args.host in {"0.0.0.0", "::", ""} else args.host  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        os.environ.setdefault("CALLTRACK_EMULATOR_URL", f"http://{host}:{args.port}/emulator")
        if settings.webhook_token is None:
            os.environ["CALLTRACK_WEBHOOK_TOKEN"] = secrets.token_urlsafe(24)
        get_settings.cache_clear()
        if args.workers > 1:
            # Emulated calls live in one process's memory; a second worker would not know them.
            print(
                "the built-in emulator runs in one process: serving with 1 worker", file=sys.stderr
            )
            args.workers = 1
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Worker processes share one /metrics view through files in this directory.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="calltrack-prom-")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
    )
    return 0


def _emulator(args: argparse.Namespace) -> int:
    import uvicorn

    from app.emulator import EmulatorConfig, create_emulator

    settings = get_settings()
    logs.configure(settings.log_level)
    token = settings.webhook_token
    secret = settings.emulator_api_key or settings.cloudonix_api_key
    key = secret.get_secret_value() if secret else None
    if token is None or key is None:
        print(
            "error: set CALLTRACK_WEBHOOK_TOKEN (sent to the service's webhooks) and "
            "CALLTRACK_EMULATOR_API_KEY (the key its REST API accepts)",
            file=sys.stderr,
        )
        return 2
    emulator = create_emulator(
        EmulatorConfig(
            api_key=key,
            domain=settings.voice_domain,
            webhook_token=token.get_secret_value(),
            service_url=args.service_url.rstrip("/"),
            rate_requests=settings.cloudonix_rate_requests,
            rate_period=settings.cloudonix_rate_period,
            speed=settings.emulator_speed,
        ),
        prefix="/emulator",
    )
    uvicorn.run(emulator, host=args.host, port=args.port, log_config=None, server_header=False)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from app.db import migrate
    from app.worker import run

    settings = get_settings()
    logs.configure(settings.log_level)
    if settings.is_sqlite and not args.no_migrate:
        migrate.upgrade(settings.database_url)
    return asyncio.run(run(settings))


def _migrate(args: argparse.Namespace) -> int:
    from app.db import migrate

    settings = get_settings()
    logs.configure(settings.log_level)
    migrate.upgrade(settings.database_url, args.revision)
    return 0


def _read_numbers(path: Path) -> list[str]:
    # One number per line, or the first column of a CSV; blank lines and '#' comments skipped.
    numbers = []
    for line in path.read_text().splitlines():
        cell = line.split(",", 1)[0].strip().strip('"')
        if cell and not cell.startswith("#") and cell.lower() not in {"number", "e164", "phone"}:
            numbers.append(cell)
    return numbers


async def _import_numbers(path: Path, pool: str) -> tuple[int, int]:
    from app.db.session import make_engine, make_sessionmaker
    from app.services import pools
    from app.state import utc_now

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            result = await pools.add_numbers(
                db,
                name=pool,
                raw_numbers=_read_numbers(path),
                region=settings.default_region,
                now=utc_now(),
            )
            await db.commit()
            return result
    finally:
        await engine.dispose()


def _numbers_import(args: argparse.Namespace) -> int:
    from app.errors import AppError

    try:
        added, reactivated = asyncio.run(_import_numbers(Path(args.file), args.pool))
    except AppError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    print(json.dumps({"pool": args.pool, "added": added, "reactivated": reactivated}))
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from app.openapi import render

    text = render()
    if args.check:
        current = Path(args.output).read_text() if Path(args.output).exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run `calltrack openapi`", file=sys.stderr)
            return 1
        return 0
    Path(args.output).write_text(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="calltrack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API (migrates a SQLite database first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-migrate", action="store_true", help="skip the SQLite migration")
    serve.set_defaults(func=_serve)

    emu = sub.add_parser("emulator", help="run the Cloudonix emulator alone")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=8010)
    emu.add_argument(
        "--service-url", default="http://127.0.0.1:8000", help="where the service's webhooks are"
    )
    emu.set_defaults(func=_emulator)

    work = sub.add_parser("worker", help="run the callback worker alone (stops on SIGTERM)")
    work.add_argument("--no-migrate", action="store_true", help="skip the SQLite migration")
    work.set_defaults(func=_worker)

    mig = sub.add_parser("migrate", help="apply database migrations (Alembic)")
    mig.add_argument("revision", nargs="?", default="head")
    mig.set_defaults(func=_migrate)

    numbers = sub.add_parser("numbers", help="manage tracking numbers")
    numbers_sub = numbers.add_subparsers(dest="numbers_command", required=True)
    imp = numbers_sub.add_parser("import", help="add numbers from a file (one per line, or CSV)")
    imp.add_argument("file")
    imp.add_argument("--pool", required=True)
    imp.set_defaults(func=_numbers_import)

    api = sub.add_parser("openapi", help="write the OpenAPI contract")
    api.add_argument("--output", default="openapi/openapi.json")
    api.add_argument("--check", action="store_true", help="fail if the file is out of date")
    api.set_defaults(func=_openapi)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `calltrack` command."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
