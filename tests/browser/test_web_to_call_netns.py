"""Runs the Web-To-Call browser tests inside a network namespace with only `lo` up."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.browser import netns

TESTS = "tests/browser/test_web_to_call.py"


@pytest.mark.skipif(not netns.available(), reason="no network namespaces here: run directly")
@pytest.mark.skipif(netns.inside(), reason="already inside one")
def test_web_to_call_in_its_own_network_namespace() -> None:
    env = {**os.environ, netns.FLAG: "1", "CALLTRACK_TEST_BACKENDS": "sqlite"}
    ran = subprocess.run(
        netns.command("-q", "-p", "no:randomly", "-p", "no:cacheprovider", TESTS),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = ran.stdout[-6000:] + ran.stderr[-2000:]
    assert ran.returncode == 0, report
    assert " passed" in ran.stdout, report
    assert "skipped" not in ran.stdout.splitlines()[-1], report
