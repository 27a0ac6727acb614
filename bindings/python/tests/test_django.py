"""prodguard.django: guarded_migrate and guarded_flush on a real SQLite file,
through Django's own command line (each run a fresh process, as manage.py)."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
from pathlib import Path
from typing import List

import pytest

pytest.importorskip("django")

from prodguard._targets import settings_target  # noqa: E402

from conftest import PYTHON, child_env, records  # noqa: E402

SETTINGS = """
SECRET_KEY = "tests"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "prodguard.django"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    db = tmp_path / "site.db"
    (tmp_path / "site_settings.py").write_text(SETTINGS.format(db=str(db)))
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE legacy (id INTEGER PRIMARY KEY)")
    conn.close()
    return db


def manage(site: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "django", *args],
        env=child_env(DJANGO_SETTINGS_MODULE="site_settings", PYTHONPATH=str(site.parent)),
        cwd=site.parent,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=180,
    )


def tables(db: Path) -> List[str]:
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    conn.close()
    return names


def groups(db: Path) -> List[str]:
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM auth_group")]
    conn.close()
    return names


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_guarded_migrate_in_development(development: Path, site: Path) -> None:
    ran = manage(site, "guarded_migrate", "--noinput")
    assert ran.returncode == 0, ran.stderr
    assert "django_migrations" in tables(site) and "auth_group" in tables(site)
    intents = [r for r in records(development) if r["kind"] == "intent"]
    assert [(i["op"]["kind"], i["op"]["target"]) for i in intents] == [("db.migrate", str(site))]
    assert [r["outcome"]["status"] for r in records(development) if r["kind"] == "outcome"] == ["ok"]


def test_guarded_migrate_in_production_is_refused(production: Path, site: Path) -> None:
    before = digest(site)
    ran = manage(site, "guarded_migrate", "--noinput")
    assert ran.returncode == 121, ran.stderr
    assert "prodguard: " in ran.stderr
    assert digest(site) == before
    assert tables(site) == ["legacy"]
    assert [r["kind"] for r in records(production)] == ["refusal"]


def test_guarded_flush(development: Path, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert manage(site, "guarded_migrate", "--noinput").returncode == 0
    with sqlite3.connect(site) as conn:
        conn.execute("INSERT INTO auth_group (name) VALUES ('staff')")
    conn.close()

    monkeypatch.setenv("PRODGUARD_ENV", "production")
    ran = manage(site, "guarded_flush", "--no-input")
    assert ran.returncode == 121, ran.stderr
    assert groups(site) == ["staff"]
    refusal = records(development)[-1]
    assert refusal["kind"] == "refusal"
    assert (refusal["op"]["kind"], refusal["op"]["target"]) == ("db.delete.all", str(site))

    monkeypatch.setenv("PRODGUARD_ENV", "development")
    ran = manage(site, "guarded_flush", "--no-input")
    assert ran.returncode == 0, ran.stderr
    assert groups(site) == []
    assert records(development)[-1]["outcome"]["status"] == "ok"


def test_a_garbage_approval_is_refused(production: Path, site: Path) -> None:
    before = digest(site)
    ran = manage(site, "guarded_migrate", "--noinput", "--approval", "garbage")
    assert ran.returncode == 121, ran.stderr
    assert digest(site) == before


def test_django_targets_have_no_password() -> None:
    settings = {"NAME": "shop", "USER": "app", "PASSWORD": "s3cret", "HOST": "db.internal", "PORT": 5432}
    assert settings_target("postgresql", settings) == "postgresql://app@db.internal:5432/shop"
    assert settings_target("sqlite", {"NAME": Path("/srv/site.db"), "PASSWORD": "x"}) == "/srv/site.db"
    assert settings_target("mysql", {"NAME": "shop", "HOST": "db"}) == "mysql://db/shop"
