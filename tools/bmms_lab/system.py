"""Process helpers shared by the lab's steps: commands, progress, files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class LabError(Exception):
    """A problem the operator must fix; the message names the value and the fix."""


_START = time.monotonic()


def log(message: str) -> None:
    """Print a progress line with the seconds elapsed since the command began."""
    elapsed = time.monotonic() - _START
    print(f"[lab {elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)


@contextmanager
def step(description: str) -> Iterator[None]:
    """Log the start and the duration of a long step."""
    log(f"{description} ...")
    began = time.monotonic()
    yield
    log(f"{description}: done in {time.monotonic() - began:.1f}s")


def run(
    command: Sequence[str],
    *,
    check: bool = True,
    capture: bool = True,
    input_text: str | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise LabError with its output."""
    try:
        result = subprocess.run(
            list(command),
            check=False,
            text=True,
            input=input_text,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            timeout=timeout,
        )
    except FileNotFoundError as error:
        raise LabError(f"command not found: {command[0]}") from error
    except subprocess.TimeoutExpired as error:
        raise LabError(f"command timed out after {timeout}s: {' '.join(command)}") from error
    if check and result.returncode != 0:
        output = ((result.stdout or "") + (result.stderr or "")).strip()
        tail = "\n".join(output.splitlines()[-20:])
        raise LabError(f"command failed with exit {result.returncode}: {' '.join(command)}\n{tail}")
    return result


def write_file(path: Path, text: str, mode: int = 0o644, owner: tuple[int, int] | None = None) -> None:
    """Write a file atomically with the given mode and owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.chmod(temporary, mode)
    if owner is not None:
        os.chown(temporary, *owner)
    os.replace(temporary, path)


def is_mounted(path: Path) -> bool:
    """Tell whether a mount point is listed in this process's mount table."""
    target = str(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            mount_point = fields[4].replace("\\040", " ")
            if mount_point == target:
                return True
    return False
