"""Shared fixtures: a clean environment per test, the audit log it writes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

# Every variable detection reads, the policy and approval variables: the
# tests declare the environment themselves, whatever the machine says.
CLEARED = [
    "PRODGUARD_ENV", "PRODGUARD_POLICY", "PRODGUARD_APPROVAL", "PRODGUARD_AUDIT_LOG",
    "APP_ENV", "RAILS_ENV", "RACK_ENV", "WP_ENVIRONMENT_TYPE", "ASPNETCORE_ENVIRONMENT",
    "DOTNET_ENVIRONMENT", "MIX_ENV", "SPRING_PROFILES_ACTIVE", "DEPLOYMENT_ENVIRONMENT",
    "OTEL_RESOURCE_ATTRIBUTES", "ENVIRONMENT", "NODE_ENV",
    "CLAUDECODE", "CURSOR_AGENT",
]

REPO = Path(__file__).resolve().parents[3]


def pytest_configure(config: Any) -> None:
    # A refusal "without a terminal" needs no terminal: the guard would ask
    # on /dev/tty and wait. scripts/test-python runs pytest under setsid.
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return
    os.close(fd)
    pytest.exit(
        "these tests need a process without a controlling terminal: run "
        "scripts/test-python, or `setsid -w python -m pytest … </dev/null`",
        returncode=2,
    )


@pytest.fixture
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment (nothing declared) writing to a fresh audit log,
    with the test's temporary directory as the working directory."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("PRODGUARD_AUDIT_LOG", str(log))
    monkeypatch.chdir(tmp_path)
    return log


@pytest.fixture
def development(audit_log: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PRODGUARD_ENV", "development")
    return audit_log


@pytest.fixture
def production(audit_log: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PRODGUARD_ENV", "production")
    return audit_log


def records(log: Path) -> List[Dict[str, Any]]:
    """The audit log's records (none when it was never written)."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def child_env(**changes: str) -> Dict[str, str]:
    """os.environ (as the fixtures left it) with `changes`, for subprocesses."""
    env = dict(os.environ)
    env.update(changes)
    return env


PYTHON = sys.executable
