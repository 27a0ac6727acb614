"""prodguard.detect, prodguard.Guard and the exceptions, on the real library."""

from __future__ import annotations

import gc
import re
import threading
from pathlib import Path

import pytest

import prodguard
from prodguard._errors import error_for

from conftest import REPO, records


def test_detect_development(development: Path) -> None:
    detection = prodguard.detect()
    assert detection.environment == "development"
    assert detection.tier == "development"
    assert detection.protected is False
    assert detection.decided_by == "env:PRODGUARD_ENV"
    used = [e for e in detection.evidence if e.get("used")]
    assert [e["source"] for e in used] == ["env:PRODGUARD_ENV"]


def test_detect_production(production: Path) -> None:
    detection = prodguard.detect()
    assert (detection.environment, detection.tier, detection.protected) == ("production", "production", True)
    assert detection.decided_by == "env:PRODGUARD_ENV"


def test_detect_undeclared_is_protected(audit_log: Path) -> None:
    detection = prodguard.detect()
    assert detection.tier == "unknown"
    assert detection.protected is True


def test_run_in_development_returns_the_value_and_is_audited(development: Path) -> None:
    calls = []
    with prodguard.Guard() as guard:
        value = guard.run("db.migrate", "orders", lambda: calls.append(1) or {"migrated": 3})
    assert value == {"migrated": 3}
    assert calls == [1]
    intent, outcome = records(development)[-2:]
    assert intent["kind"] == "intent"
    assert intent["op"]["kind"] == "db.migrate"
    assert intent["op"]["target"] == "orders"
    assert intent["op"]["tier"] == "development"
    assert outcome["kind"] == "outcome"
    assert outcome["attempt_id"] == intent["attempt_id"]
    assert outcome["outcome"]["status"] == "ok"
    assert prodguard.verify_audit_log(development) == 0


def test_production_without_a_terminal_is_not_confirmed(production: Path) -> None:
    called = []
    with prodguard.Guard() as guard:
        with pytest.raises(prodguard.NotConfirmed) as refused:
            guard.run("db.migrate", "orders", lambda: called.append(1))
    assert called == []
    assert isinstance(refused.value, prodguard.Refused)
    assert refused.value.exit_code == 121
    assert "confirm" in refused.value.message
    assert str(refused.value) == refused.value.message
    assert [r["kind"] for r in records(production)][-1:] == ["refusal"]
    assert not [r for r in records(production) if r["kind"] == "intent"]


DENY_POLICY = """
[[rule]]
name = "no drops here"
operations = ["db.drop.*"]
tiers = ["development"]
deny = "dropping is never done from here"
"""


def test_a_deny_rule_denies(development: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_POLICY)
    called = []
    with prodguard.Guard(policy) as guard:
        with pytest.raises(prodguard.Denied) as refused:
            guard.run("db.drop.table", "orders", lambda: called.append(1))
        # The same policy lets what it does not name through.
        assert guard.run("db.migrate", "orders", lambda: "ran") == "ran"
    assert called == []
    assert refused.value.exit_code == 120
    assert "dropping is never done from here" in refused.value.message


ROLLBACK_POLICY = """
[[rule]]
name = "migrations bring their way back"
operations = ["db.migrate"]
tiers = ["production"]
require = ["audit", "rollback"]
"""


def test_a_rule_that_requires_a_way_back_gets_it_from_rollback(production: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(ROLLBACK_POLICY)
    called = []
    with prodguard.Guard(policy) as guard:
        with pytest.raises(prodguard.PolicyError) as refused:
            guard.run("db.migrate", "orders", lambda: called.append(1))
        assert called == []
        assert "--rollback CMD" in refused.value.message
        value = guard.run("db.migrate", "orders", lambda: "migrated", rollback="./migrate down 0042")
    assert value == "migrated"
    intent = [r for r in records(production) if r["kind"] == "intent"][-1]
    assert intent["rollback"] == {"command": "./migrate down 0042"}
    assert prodguard.verify_audit_log(production) == 0


def test_a_bad_policy_file_is_a_policy_error(development: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[[rule]]\noperations = [\"db.*\"]\ntiers = [\"production\"]\nrequire = [\"confirm\"]\nbogus = 1\n")
    with pytest.raises(prodguard.PolicyError) as refused:
        prodguard.Guard(str(policy))
    assert refused.value.exit_code == 125
    assert "bogus" in refused.value.message
    with pytest.raises(prodguard.PolicyError):
        prodguard.Guard(tmp_path / "missing.toml")


def test_an_exception_in_fn_propagates_and_is_recorded_failed(development: Path) -> None:
    class MigrationBroke(Exception):
        pass

    error = MigrationBroke("column exists")
    with prodguard.Guard() as guard:
        with pytest.raises(MigrationBroke) as raised:
            guard.run("db.migrate", "orders", lambda: (_ for _ in ()).throw(error))
        assert raised.value is error
        # BaseExceptions too: SystemExit from fn reaches the caller.
        with pytest.raises(SystemExit):
            guard.run("db.migrate", "orders", lambda: (_ for _ in ()).throw(SystemExit(3)))
    outcomes = [r for r in records(development) if r["kind"] == "outcome"]
    assert [o["outcome"]["status"] for o in outcomes] == ["failed", "failed"]


def test_a_garbage_approval_token_is_refused(production: Path) -> None:
    called = []
    with prodguard.Guard() as guard:
        for token in ["garbage", "pga1.bm90IGEgdG9rZW4.c2ln", "pga2.AAAA.BBBB"]:
            with pytest.raises(prodguard.NotConfirmed) as refused:
                guard.run("db.migrate", "orders", lambda: called.append(1), approval=token)
            assert refused.value.exit_code == 121
    assert called == []


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"target": b"ord\xffers"}, "target"),
        ({"target": "ord\0ers"}, "target"),
        ({"target": "ord\udcffers"}, "target"),
        ({"operation": b"db.\xc3("}, "operation"),
        ({"operation": "db.migrate\0x"}, "operation"),
        ({"fingerprint": b"\xfe"}, "fingerprint"),
        ({"approval": "tok\0en"}, "approval"),
        ({"rollback": b"down\xff"}, "rollback"),
    ],
)
def test_bad_strings_raise_invalid_argument(development: Path, kwargs: dict, name: str) -> None:
    called = []
    arguments = {"operation": "db.migrate", "target": "orders", **kwargs}
    with prodguard.Guard() as guard:
        with pytest.raises(prodguard.InvalidArgument) as raised:
            guard.run(arguments.pop("operation"), arguments.pop("target"), lambda: called.append(1), **arguments)
    assert raised.value.status == 2
    assert isinstance(raised.value, ValueError)
    assert name in raised.value.message
    assert called == []
    assert records(development) == []


def test_a_bad_policy_path_string_raises_cleanly(development: Path) -> None:
    with pytest.raises(prodguard.InvalidArgument):
        prodguard.Guard("policy\0.toml")
    with pytest.raises(prodguard.InvalidArgument):
        prodguard.Guard(b"\xffpolicy.toml")


def test_guard_is_released_by_close_with_and_gc(development: Path) -> None:
    guard = prodguard.Guard()
    with guard:
        assert not guard.closed
    assert guard.closed
    guard.close()  # twice: nothing
    with pytest.raises(ValueError):
        guard.run("db.migrate", "orders", lambda: None)
    with pytest.raises(ValueError):
        guard.detect()

    dropped = prodguard.Guard()
    finalizer = dropped._finalizer
    assert finalizer.alive
    del dropped
    gc.collect()
    assert not finalizer.alive


def test_close_inside_run_is_refused(development: Path) -> None:
    with prodguard.Guard() as guard:
        with pytest.raises(RuntimeError):
            guard.run("db.migrate", "orders", guard.close)
        assert guard.run("db.migrate", "orders", lambda: "still usable") == "still usable"


def test_one_guard_many_threads(development: Path) -> None:
    results = {}
    with prodguard.Guard() as guard:

        def work(i: int) -> None:
            results[i] = guard.run("db.migrate", f"shard-{i}", lambda: i * i)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == {i: i * i for i in range(8)}
    assert prodguard.verify_audit_log(development) == 0


def test_every_status_in_the_header_has_its_exception() -> None:
    header = (REPO / "bindings" / "c" / "include" / "prodguard.h").read_text()
    statuses = dict(
        (name, int(value)) for name, value in re.findall(r"^\s*(PRODGUARD_[A-Z_]+) = (\d+),$", header, re.M)
        if not name.startswith(("PRODGUARD_TIER_", "PRODGUARD_FIELD_"))
    )
    assert statuses["PRODGUARD_OK"] == 0 and len(statuses) == 12, statuses
    expected = {
        "PRODGUARD_OPERATION_FAILED": prodguard.OperationFailed,
        "PRODGUARD_INVALID_ARGUMENT": prodguard.InvalidArgument,
        "PRODGUARD_PANIC": prodguard.InternalError,
        "PRODGUARD_IO_ERROR": prodguard.IoError,
        "PRODGUARD_DENIED": prodguard.Denied,
        "PRODGUARD_NOT_CONFIRMED": prodguard.NotConfirmed,
        "PRODGUARD_BACKUP_FAILED": prodguard.BackupFailed,
        "PRODGUARD_AUDIT_UNAVAILABLE": prodguard.AuditUnavailable,
        "PRODGUARD_ENV_MISMATCH": prodguard.EnvMismatch,
        "PRODGUARD_POLICY_ERROR": prodguard.PolicyError,
        "PRODGUARD_LOCK_HELD": prodguard.LockHeld,
    }
    assert set(expected) == set(statuses) - {"PRODGUARD_OK"}
    for name, cls in expected.items():
        error = error_for(statuses[name], "why")
        assert type(error) is cls, name
        assert error.status == statuses[name] and error.message == "why"
        if statuses[name] >= 120 or name == "PRODGUARD_LOCK_HELD":
            assert isinstance(error, prodguard.Refused) and error.exit_code == statuses[name]
        else:
            assert not isinstance(error, prodguard.Refused)
    unknown = error_for(99, "newer library")
    assert type(unknown) is prodguard.Error and unknown.status == 99


def test_an_unwritable_audit_log_refuses_in_production(production: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A directory where the log file should be: the log cannot take records.
    (tmp_path / "log-dir").mkdir()
    monkeypatch.setenv("PRODGUARD_AUDIT_LOG", str(tmp_path / "log-dir"))
    called = []
    with pytest.raises(prodguard.AuditUnavailable) as refused:
        with prodguard.Guard() as guard:
            guard.run("db.migrate", "orders", lambda: called.append(1))
    assert refused.value.exit_code == 123
    assert called == []


def test_evaluate_classifies_sql() -> None:
    answer = prodguard.evaluate(
        {"sql": {"script": "CREATE TABLE a (x int);\nDROP TABLE b;", "dialect": "sqlite"}, "operation": {"target": "shop.db"}}
    )
    assert answer["sql"]["operation"] == "db.drop.table"
    assert [s["kind"] for s in answer["sql"]["statements"]] == ["db.create", "db.drop.table"]
    with pytest.raises(prodguard.PolicyError):
        prodguard.evaluate({"sql": {"script": "DROP TABLE b", "dialect": "klingon"}})


def test_versions() -> None:
    assert prodguard.library_version() == prodguard.__version__
