"""`calltrack spend import FILE.csv`: every row checked first, then all written or none."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.spend.helpers import stored

ROOT = Path(__file__).resolve().parents[2]
_INSTALLED = Path(sys.executable).with_name("calltrack")
CALLTRACK = [str(_INSTALLED)] if _INSTALLED.exists() else [sys.executable, "-m", "app.cli"]
HEADER = "day,source,medium,campaign,cost,currency,clicks,impressions"


def _line(n: int, cost: str = "1.25") -> str:
    # Two days, so that keys spread over days and campaigns.
    return f"2026-11-{1 + n % 2:02d},google,cpc,c{n},{cost},USD,{n},{n * 10}"


def _csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


async def _run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLTRACK_")}
    env["CALLTRACK_DATABASE_URL"] = database_url
    command = [*CALLTRACK, "spend", "import", *args]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
        )

    return await asyncio.to_thread(run)


async def test_a_good_file_is_imported_and_the_same_file_again_changes_nothing(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    path = _csv(tmp_path / "spend.csv", [HEADER, *(_line(n) for n in range(200))])
    done = await _run(database_url, str(path), "--batch", "64")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "received": 200,
        "inserted": 200,
        "updated": 0,
        "unchanged": 0,
    }
    assert done.stderr == ""  # no progress: stderr is not a terminal
    first = await stored(client)
    assert len(first) == 200
    assert {(r["cost"], r["currency"]) for r in first} == {("1.25", "USD")}
    assert {r["clicks"] for r in first} == set(range(200))

    again = await _run(database_url, str(path))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {
        "received": 200,
        "inserted": 0,
        "updated": 0,
        "unchanged": 200,
    }
    assert await stored(client) == first

    lines = [HEADER, *(_line(n, cost="2" if n == 7 else "1.25") for n in range(201))]
    changed = await _run(database_url, str(_csv(tmp_path / "changed.csv", lines)))
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout) == {
        "received": 201,
        "inserted": 1,
        "updated": 1,
        "unchanged": 199,
    }


async def test_headers_are_case_insensitive_and_optional_columns_may_be_left_out(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    content = (
        "\ufeffCurrency, Cost ,SOURCE,Day,Clicks\n"
        "usd,12.5,google,2026-11-20,\n"
        '\n"eur","0.000001","meta, inc",2026-11-21,3\n'
    )
    path = tmp_path / "spend.csv"
    path.write_text(content)
    done = await _run(database_url, str(path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["inserted"] == 2
    assert [
        (r["day"], r["source"], r["medium"], r["campaign"], r["cost"], r["currency"], r["clicks"])
        for r in await stored(client)
    ] == [
        ("2026-11-20", "google", "", "", "12.50", "USD", None),
        ("2026-11-21", "meta, inc", "", "", "0.000001", "EUR", 3),
    ]


async def test_a_bad_row_at_line_57_is_named_and_nothing_is_written(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    lines = [HEADER, *(_line(n) for n in range(100))]
    lines[56] = _line(55, cost="-3.00")  # the file's line 57
    path = _csv(tmp_path / "spend.csv", lines)
    done = await _run(database_url, str(path), "--batch", "10")
    assert done.returncode == 1
    assert done.stdout == ""
    problems = done.stderr.splitlines()
    assert problems[0] == "line 57: cost: Input should be greater than or equal to 0"
    assert problems[-1] == "error: nothing was imported"
    assert await stored(client) == []


async def test_every_bad_row_is_reported_with_its_line(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    lines = [
        HEADER,
        _line(0),
        "2026-11-31,google,cpc,x,1,USD,,",
        _line(1),
        "2026-11-02,google,cpc,y,1.5,dollars,,",
        '2026-11-02,"",cpc,z,1,USD,,',
        "2026-11-02,google,cpc,w,1,USD,,,extra",
        _line(0, cost="9"),  # the same key as line 2
    ]
    done = await _run(database_url, str(_csv(tmp_path / "spend.csv", lines)))
    assert done.returncode == 1
    problems = done.stderr.splitlines()
    assert problems[0].startswith("line 3: day: ")
    assert problems[1].startswith("line 5: currency: ")
    assert problems[2].startswith("line 6: source: ")
    assert problems[3] == "line 7: 9 cells, the header has 8"
    assert problems[-1] == "error: nothing was imported"
    # Duplicates are reported once every row is valid on its own.
    lines = [HEADER, _line(0), _line(1), _line(0, cost="9")]
    done = await _run(database_url, str(_csv(tmp_path / "dup.csv", lines)))
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        "line 4: day, source, medium, campaign: the same as line 2"
    )
    assert await stored(client) == []


async def test_unknown_or_missing_columns_refuse_the_file(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    unknown = _csv(
        tmp_path / "unknown.csv",
        ["day,source,cost,currency,Spend,notes", "2026-11-20,google,1,USD,1,x"],
    )
    done = await _run(database_url, str(unknown))
    assert done.returncode == 1
    assert done.stderr.splitlines()[0].startswith("line 1: unknown column(s): Spend, notes (")
    missing = _csv(tmp_path / "missing.csv", ["day,source,medium", "2026-11-20,google,cpc"])
    done = await _run(database_url, str(missing))
    assert done.returncode == 1
    assert "line 1: missing column(s): cost, currency" in done.stderr
    empty = _csv(tmp_path / "empty.csv", [HEADER])
    done = await _run(database_url, str(empty))
    assert done.returncode == 1
    assert "no rows" in done.stderr
    absent = await _run(database_url, str(tmp_path / "absent.csv"))
    assert absent.returncode == 1
    assert "absent.csv" in absent.stderr
    assert await stored(client) == []


async def test_progress_is_reported_on_stderr_when_asked(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    path = _csv(tmp_path / "spend.csv", [HEADER, *(_line(n) for n in range(100))])
    done = await _run(database_url, str(path), "--progress", "--batch", "10")
    assert done.returncode == 0, done.stderr
    tenths = [f"{n}/100 rows ({n}%)" for n in range(10, 101, 10)]
    assert done.stderr.splitlines() == [
        *(f"validating: {t}" for t in tenths),
        *(f"writing: {t}" for t in tenths),
    ]
    assert json.loads(done.stdout)["inserted"] == 100
    assert len(await stored(client)) == 100


async def test_batch_size_is_bounded(database_url: str, tmp_path: Path) -> None:
    path = _csv(tmp_path / "spend.csv", [HEADER, _line(0)])
    for batch in ("0", "3001", "many"):
        done = await _run(database_url, str(path), "--batch", batch)
        assert done.returncode == 2
        assert "--batch" in done.stderr
