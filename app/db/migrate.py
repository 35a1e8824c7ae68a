"""Run Alembic migrations from code (CLI and tests)."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config

_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    """Alembic config for the project's migrations, pointed at this database."""
    ini = Path.cwd() / "alembic.ini"
    if not ini.exists():
        ini = _ROOT / "alembic.ini"
    config = Config(str(ini))
    config.attributes["database_url"] = database_url
    return config


@contextlib.contextmanager
def _sqlite_lock(database_url: str) -> Iterator[None]:
    # Several `serve` processes starting at once on a new SQLite file would race to migrate.
    path = database_url.split("///", 1)[-1].split("?", 1)[0]
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate-lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database up to a revision (blocking; call from a thread in async code)."""
    config = alembic_config(database_url)
    if database_url.startswith("sqlite"):
        with _sqlite_lock(database_url):
            command.upgrade(config, revision)
    else:
        command.upgrade(config, revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Migrate the database down to a revision."""
    command.downgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Fail when the models and the migrations disagree (alembic check)."""
    command.check(alembic_config(database_url))
