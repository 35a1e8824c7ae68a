"""The `calltrack` command: serve, worker, emulator, migrate, numbers/spend import, openapi."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import secrets
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from app import logs
from app.settings import get_settings

if TYPE_CHECKING:
    from app.schemas.spend import SpendRow


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
    from app.emulator.webcalls import sip_gateway

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
        sip=sip_gateway,
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


SPEND_COLUMNS = ("day", "source", "medium", "campaign", "cost", "currency", "clicks", "impressions")
_SPEND_REQUIRED = ("day", "source", "cost", "currency")
_SPEND_OPTIONAL = ("medium", "campaign", "clicks", "impressions")  # an empty cell: none given
_SHOWN_PROBLEMS = 20


class _SpendFileError(Exception):
    """The file cannot be imported: every problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0])
        self.problems = problems


class _Progress:
    """'<phase>: done/total rows (N%)' on stderr at every tenth of the way, when enabled."""

    def __init__(self, phase: str, total: int, *, enabled: bool, out: TextIO) -> None:
        self.phase, self.total, self.enabled, self.out = phase, total, enabled, out
        self._tenths = 0

    def __call__(self, done: int) -> None:
        if not self.enabled or not self.total:
            return
        tenths = done * 10 // self.total
        if tenths > self._tenths:
            self._tenths = tenths
            percent = done * 100 // self.total
            print(f"{self.phase}: {done}/{self.total} rows ({percent}%)", file=self.out)
            self.out.flush()


def _spend_header(line: int, cells: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in cells]
    problems = []
    unknown = [cells[i].strip() for i, name in enumerate(names) if name not in SPEND_COLUMNS]
    if unknown:
        problems.append(
            f"line {line}: unknown column(s): {', '.join(unknown)} "
            f"(known: {', '.join(SPEND_COLUMNS)})"
        )
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        problems.append(f"line {line}: column(s) named twice: {', '.join(repeated)}")
    missing = [name for name in _SPEND_REQUIRED if name not in names]
    if missing:
        problems.append(f"line {line}: missing column(s): {', '.join(missing)}")
    if problems:
        raise _SpendFileError(problems)
    return names


def _spend_records(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    # The header's column names, and each row's cells with the file line it starts on.
    header: list[str] | None = None
    records: list[tuple[int, list[str]]] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        end = 0
        try:
            for cells in reader:
                start, end = end + 1, reader.line_num  # a quoted cell may span lines
                if not any(cell.strip() for cell in cells):
                    continue  # a blank line
                if header is None:
                    header = _spend_header(start, cells)
                else:
                    records.append((start, cells))
        except csv.Error as exc:
            raise _SpendFileError([f"line {reader.line_num}: {exc}"]) from exc
    if header is None:
        raise _SpendFileError(["the file is empty: it needs a header row"])
    if not records:
        raise _SpendFileError(["the file has no rows after its header"])
    return header, records


def _read_spend(path: Path, *, show_progress: bool) -> list[SpendRow]:
    """Read and check every row of a spend CSV; any problem refuses the whole file."""
    from pydantic import ValidationError

    from app.errors import field_of
    from app.schemas.spend import SpendRow
    from app.services import spend

    header, records = _spend_records(path)
    progress = _Progress("validating", len(records), enabled=show_progress, out=sys.stderr)
    rows: list[SpendRow] = []
    lines: list[int] = []
    problems: list[str] = []
    for done, (line, cells) in enumerate(records, start=1):
        if len(cells) != len(header):
            problems.append(f"line {line}: {len(cells)} cells, the header has {len(header)}")
        else:
            given = {
                name: cell.strip()
                for name, cell in zip(header, cells, strict=True)
                if cell.strip() or name not in _SPEND_OPTIONAL
            }
            try:
                rows.append(SpendRow.model_validate(given))
                lines.append(line)
            except ValidationError as exc:
                problems.extend(
                    f"line {line}: {field_of(err['loc']) if err['loc'] else 'row'}: {err['msg']}"
                    for err in exc.errors()
                )
        progress(done)
    if not problems:
        for first, again in spend.duplicates(rows):
            problems.append(
                f"line {lines[again]}: day, source, medium, campaign: "
                f"the same as line {lines[first]}"
            )
    if problems:
        raise _SpendFileError(problems)
    return rows


async def _import_spend(rows: list[SpendRow], batch: int, progress: _Progress) -> dict[str, int]:
    from app.db.session import make_engine, make_sessionmaker
    from app.services import spend
    from app.state import utc_now

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            done = await spend.import_rows(db, rows, now=utc_now(), batch=batch, progress=progress)
            await db.commit()
    finally:
        await engine.dispose()
    return {
        "received": done.received,
        "inserted": done.inserted,
        "updated": done.updated,
        "unchanged": done.unchanged,
    }


def _spend_import(args: argparse.Namespace) -> int:
    from app.errors import AppError

    show = args.progress or sys.stderr.isatty()
    try:
        rows = _read_spend(Path(args.file), show_progress=show)
    except _SpendFileError as exc:
        for problem in exc.problems[:_SHOWN_PROBLEMS]:
            print(problem, file=sys.stderr)
        if len(exc.problems) > _SHOWN_PROBLEMS:
            print(f"... and {len(exc.problems) - _SHOWN_PROBLEMS} more", file=sys.stderr)
        print("error: nothing was imported", file=sys.stderr)
        return 1
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 1
    writing = _Progress("writing", len(rows), enabled=show, out=sys.stderr)
    try:
        summary = asyncio.run(_import_spend(rows, args.batch, writing))
    except AppError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


def _batch(text: str) -> int:
    from app.db.repositories.spend import MAX_BATCH

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_BATCH}")
    return value


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

    work = sub.add_parser(
        "worker", help="run the callback worker and the webhook dispatcher (stops on SIGTERM)"
    )
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

    spend = sub.add_parser("spend", help="manage media spend")
    spend_sub = spend.add_subparsers(dest="spend_command", required=True)
    spend_imp = spend_sub.add_parser(
        "import",
        help="add or replace spend rows from a CSV, all or none",
        description="CSV with a header row: day, source, cost, currency, and optionally "
        "medium, campaign, clicks, impressions (any order, any case). Every row is checked "
        "before anything is written; then all are written in one transaction.",
    )
    spend_imp.add_argument("file")
    spend_imp.add_argument(
        "--batch", type=_batch, default=1000, help="rows per statement (default 1000)"
    )
    spend_imp.add_argument(
        "--progress",
        action="store_true",
        help="report progress on stderr even when it is not a terminal",
    )
    spend_imp.set_defaults(func=_spend_import)

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
