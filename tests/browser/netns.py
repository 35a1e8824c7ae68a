"""Running browser tests inside a network namespace of their own (only `lo` up)."""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys

FLAG = "CALLTRACK_IN_NETNS"
UP = "ip link set lo up"


def inside() -> bool:
    """Whether this process runs in the namespace the wrapper made."""
    return os.environ.get(FLAG) == "1"


@functools.cache
def available() -> bool:
    """Whether a namespace can be made here (root, unshare and ip present, and allowed)."""
    if inside():
        return True
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    probe = subprocess.run(
        ["unshare", "--net", "sh", "-c", UP], capture_output=True, timeout=30, check=False
    )
    return probe.returncode == 0


def command(*pytest_args: str) -> list[str]:
    """The command that runs pytest with `pytest_args` inside a new namespace."""
    inner = " ".join([UP, "&&", "exec", shlex.quote(sys.executable), "-m", "pytest", *pytest_args])
    return ["unshare", "--net", "sh", "-c", inner]
