"""prodguard.alembic: a real Alembic project on a real SQLite file."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, List, Optional

import pytest

pytest.importorskip("alembic")

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402

import prodguard  # noqa: E402
from prodguard.alembic import guard_migrations, url_target  # noqa: E402

from conftest import PYTHON, child_env, records  # noqa: E402

ENV_PY = '''
from alembic import context
from sqlalchemy import engine_from_config, pool

from prodguard.alembic import guard_migrations

config = context.config


def run_migrations_offline():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = engine_from_config(config.get_section(config.config_ini_section), prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


guard_migrations(context, run_migrations_online, run_migrations_offline)
'''

REVISION = '''
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True), sa.Column("item", sa.Text))


def downgrade():
    op.drop_table("orders")
'''


@pytest.fixture
def project(tmp_path: Path) -> SimpleNamespace:
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(ENV_PY)
    (scripts / "script.py.mako").write_text("")
    (scripts / "versions" / "0001_orders.py").write_text(REVISION)
    db = tmp_path / "shop.db"
    # An existing database, so "unchanged" means the same bytes.
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.close()
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {scripts}\nsqlalchemy.url = sqlite:///{db}\n")
    return SimpleNamespace(ini=ini, db=db, tmp=tmp_path)


def config(project: SimpleNamespace, output: Optional[io.StringIO] = None) -> Config:
    return Config(str(project.ini), output_buffer=output)


def tables(db: Path) -> List[str]:
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    conn.close()
    return names


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_upgrade_in_development_runs_guarded(development: Path, project: SimpleNamespace) -> None:
    command.upgrade(config(project), "head")
    assert "orders" in tables(project.db)
    intents = [r for r in records(development) if r["kind"] == "intent"]
    outcomes = [r for r in records(development) if r["kind"] == "outcome"]
    assert [(i["op"]["kind"], i["op"]["target"]) for i in intents] == [("db.migrate", str(project.db))]
    assert [o["outcome"]["status"] for o in outcomes] == ["ok"]

    command.downgrade(config(project), "base")
    assert "orders" not in tables(project.db)
    kinds = [r["op"]["kind"] for r in records(development) if r["kind"] == "intent"]
    assert kinds == ["db.migrate", "db.migrate.down"]


def test_upgrade_in_production_is_refused_and_changes_nothing(production: Path, project: SimpleNamespace) -> None:
    before = digest(project.db)
    with pytest.raises(prodguard.NotConfirmed) as refused:
        command.upgrade(config(project), "head")
    assert refused.value.exit_code == 121
    assert digest(project.db) == before
    assert tables(project.db) == ["customers"]
    refusals = [r for r in records(production) if r["kind"] == "refusal"]
    assert [r["op"]["target"] for r in refusals] == [str(project.db)]


def test_alembic_command_line_exits_with_the_refusal(production: Path, project: SimpleNamespace) -> None:
    before = digest(project.db)
    ran = subprocess.run(
        [PYTHON, "-m", "alembic", "-c", str(project.ini), "upgrade", "head"],
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=120,
    )
    assert ran.returncode == 121, ran.stderr
    assert "prodguard: " in ran.stderr and "confirm" in ran.stderr
    assert digest(project.db) == before


def test_offline_sql_is_classified_and_nothing_runs(production: Path, project: SimpleNamespace) -> None:
    before = digest(project.db)
    out = io.StringIO()
    command.upgrade(config(project, out), "head", sql=True)
    text = out.getvalue()
    assert text.startswith("-- prodguard: this script is db.create, fingerprint ")
    assert "CREATE TABLE orders" in text
    assert f"--target {project.db} FILE" in text

    out = io.StringIO()
    command.downgrade(config(project, out), "0001:base", sql=True)
    text = out.getvalue()
    header = [line for line in text.splitlines() if line.startswith("-- prodguard:")]
    assert header[0].startswith("-- prodguard: this script is db.drop.table (destructive), fingerprint ")
    assert any("db.drop.table on orders" in line for line in header)
    # The fingerprint is the one prodguard gives the script itself
    # (comments are left out of it), so an approval for it matches.
    script = text.split("\n", len(header))[-1]
    answer = prodguard.evaluate({"sql": {"script": script, "dialect": "sqlite"}})
    assert answer["sql"]["fingerprint"] in header[0]
    assert digest(project.db) == before
    assert records(production) == []


def test_urls_lose_their_password_and_driver() -> None:
    url = "postgresql+psycopg2://app:s3cret@db.internal:5432/shop?sslmode=require&password=other"
    assert url_target(url) == "postgresql://app@db.internal:5432/shop?sslmode=require"
    # prodguard's core strips PostgreSQL passwords itself, no other: these must be gone here.
    assert url_target("mysql+pymysql://root:pw@localhost/app") == "mysql://root@localhost/app"
    assert url_target("mssql+pyodbc://sa:Pa%40ss@sqlhost:1433/erp") == "mssql://sa@sqlhost:1433/erp"
    assert url_target("sqlite:///relative/app.db") == "relative/app.db"
    assert url_target("sqlite:////srv/app/app.db") == "/srv/app/app.db"


def test_a_url_with_a_password_never_reaches_the_record(development: Path) -> None:
    # The helper's own contract, on a stand-in for alembic.context (no
    # PostgreSQL server needed: the online function is ours).
    fake_env: Any = SimpleNamespace(
        context_opts={"fn": lambda: None},
        config=SimpleNamespace(
            get_main_option=lambda name: "postgresql+psycopg2://app:s3cret@db.internal/shop",
            cmd_opts=None,
        ),
        is_offline_mode=lambda: False,
    )
    fake_env.context_opts["fn"].__name__ = "upgrade"
    assert guard_migrations(fake_env, lambda: "migrated") == "migrated"
    assert guard_migrations(fake_env, lambda: "again", url="mysql+pymysql://app:s3cret@db.internal/shop") == "again"
    text = development.read_text()
    assert "s3cret" not in text
    intents = [r for r in records(development) if r["kind"] == "intent"]
    assert [i["op"]["target"] for i in intents] == ["postgresql://app@db.internal/shop", "mysql://app@db.internal/shop"]
    assert {i["op"]["kind"] for i in intents} == {"db.migrate"}
