"""The receiver code the README gives CRMs accepts our signatures and refuses forgeries."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.services import signing

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_valid() -> Callable[..., bool]:
    """The `valid` function from the README's Python block, run as a CRM would copy it."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    [code] = [block for block in blocks if "def valid(" in block]
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    found: Callable[..., bool] = scope["valid"]
    return found


def test_the_readme_receiver_checks_signatures_as_the_service_makes_them() -> None:
    valid = readme_valid()
    secret = signing.new_secret()
    body = b'{"id":"evt_1","type":"call.completed","data":{}}'
    now = int(time.time())
    header = signing.header(secret, now, body)
    assert valid(secret, header, body)
    assert not valid(secret, header, body + b" ")
    assert not valid(signing.new_secret(), header, body)
    assert not valid(secret, signing.header(secret, now - 301, body), body)
    assert not valid(secret, "t=abc,v1=00", body)
    assert not valid(secret, "", body)
    # A rotation period: two signatures, one of them good.
    assert valid(secret, f"t={now},v1={'0' * 64},v1={signing.digest(secret, now, body)}", body)


def test_the_readme_receiver_refuses_hostile_headers_without_raising() -> None:
    valid = readme_valid()
    secret = signing.new_secret()
    body = b"{}"
    now = int(time.time())
    for header in (f"t={now},v1=é", "t=²,v1=00", f"t={now},v1", "v1=,t=", "t=" + "9" * 5000):
        assert not valid(secret, header, body)
