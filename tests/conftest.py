"""Shared pytest configuration: data paths and helpers used across unit, integration and CLI tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def need_exe(name: str, package: str) -> str:
    """Find a system program; skip locally with the apt hint, fail under CI so CI never skips silently."""
    exe = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if exe:
        return exe
    msg = f"{name} not found - apt-get install -y {package}"
    if os.environ.get("CI"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)
    raise AssertionError("unreachable")
