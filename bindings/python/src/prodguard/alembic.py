"""Alembic: guard the migrations ``env.py`` runs.

In ``env.py``, replace the last lines (``if context.is_offline_mode(): …``)
with::

    from prodguard.alembic import guard_migrations

    guard_migrations(context, run_migrations_online, run_migrations_offline)

Online, the migrations run as the guarded operation ``db.migrate``
(``db.migrate.down`` for ``alembic downgrade``; ``db.read`` for commands
that only read the database, such as ``current`` or ``check``; the policy
decides what each needs) on the database named by ``sqlalchemy.url``
without its password (see :func:`prodguard._targets.url_target`).

Offline (``--sql``) nothing touches a database: the script is written as
Alembic writes it, headed by SQL comments with prodguard's classification
of it (its operation, fingerprint and destructive statements), and whoever
applies it guards that run (``prodguard sql exec``).

Run from Alembic's command line, a refusal prints its reason and exits with
its code (120-125); called as a library (``alembic.command.upgrade``), it
raises :class:`prodguard.Refused`.
"""

from __future__ import annotations

import io
import sys
from typing import Any, Callable, Dict, List, Optional, TypeVar

from ._errors import Error, Refused
from ._guard import Guard, evaluate
from ._targets import url_target

__all__ = ["guard_migrations", "operation_for", "classify_script", "url_target"]

T = TypeVar("T")

# Alembic's command functions (the `fn` each command gives env.py's
# EnvironmentContext), named in the policy's operation kinds. A command not
# listed is guarded as db.migrate.
_KINDS: Dict[str, str] = {
    "upgrade": "db.migrate",
    "downgrade": "db.migrate.down",
    "do_stamp": "db.migrate",
    "do_ensure_version": "db.migrate",
    "display_version": "db.read",  # current
    "show_current": "db.read",  # show current
    "_display_current_history": "db.read",  # history -i
    "retrieve_migrations": "db.read",  # revision --autogenerate, check
    "nothing": "db.read",  # merge, revision with revision_environment
    "edit_current": "db.read",  # edit current
}

# The dialects prodguard's SQL classifier reads, by SQLAlchemy backend name.
_DIALECTS: Dict[str, str] = {
    "postgresql": "postgres",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
}


def _environment(context: Any) -> Any:
    """The EnvironmentContext behind `alembic.context` (or itself)."""
    if hasattr(context, "context_opts"):
        return context
    env = getattr(context, "_proxy", None)
    if env is None:
        raise ValueError("guard_migrations takes alembic.context, inside env.py")
    return env


def operation_for(context: Any) -> str:
    """The operation kind of the Alembic command running ``env.py``."""
    fn = _environment(context).context_opts.get("fn")
    return _KINDS.get(getattr(fn, "__name__", ""), "db.migrate")


def guard_migrations(
    context: Any,
    online: Callable[[], T],
    offline: Optional[Callable[[], Any]] = None,
    *,
    url: Any = None,
    operation: Optional[str] = None,
    policy: Any = None,
    guard: Optional[Guard] = None,
    fingerprint: Optional[str] = None,
    approval: Optional[str] = None,
) -> Optional[T]:
    """Runs ``online()`` under the guard, or ``offline()`` with the emitted
    SQL classified. ``url`` defaults to ``sqlalchemy.url``; ``operation`` to
    the command's kind (:func:`operation_for`); ``guard`` to a new
    ``Guard(policy)``. ``fingerprint`` and ``approval`` are passed to
    :meth:`prodguard.Guard.run` (``approval`` None: ``PRODGUARD_APPROVAL``)."""
    env = _environment(context)
    if url is None:
        url = env.config.get_main_option("sqlalchemy.url")
    if not url:
        raise ValueError("no database URL: set sqlalchemy.url or pass url=")
    target = url_target(url)
    if env.is_offline_mode():
        if offline is None:
            raise ValueError("alembic runs offline (--sql): pass run_migrations_offline as offline")
        _run_offline(env, offline, url, target)
        return None
    kind = operation or operation_for(env)
    try:
        if guard is not None:
            return guard.run(kind, target, online, fingerprint=fingerprint, approval=approval)
        with Guard(policy) as own:
            return own.run(kind, target, online, fingerprint=fingerprint, approval=approval)
    except Refused as refused:
        if getattr(env.config, "cmd_opts", None) is None:
            raise
        # Alembic's command line: exit as the prodguard CLI would.
        print(f"prodguard: {refused.message}", file=sys.stderr)
        raise SystemExit(refused.exit_code) from refused


def classify_script(script: str, backend: str, target: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """prodguard's classification of an SQL ``script`` for an SQLAlchemy
    ``backend`` name (``answer["sql"]`` of :func:`prodguard.evaluate`), or
    None for a backend whose dialect prodguard does not read."""
    dialect = _DIALECTS.get(backend)
    if dialect is None:
        return None
    request: Dict[str, Any] = {"sql": {"script": script, "dialect": dialect}}
    if target is not None:
        request["operation"] = {"target": target}
    answer = evaluate(request)
    sql: Dict[str, Any] = answer["sql"]
    return sql


def _printable(text: Any) -> str:
    """`text` on one line of an SQL comment: control characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _header(script: str, backend: str, target: str) -> List[str]:
    lines = []
    try:
        sql = classify_script(script, backend, target)
    except Error as error:
        return [f"-- prodguard: not classified: {_printable(error.message)}"]
    if sql is None:
        return [f"-- prodguard: not classified: prodguard reads postgres, sqlite and mysql, not {_printable(backend)}"]
    lines.append(
        f"-- prodguard: this script is {_printable(sql['operation'])}"
        f"{' (destructive)' if sql['destructive'] else ''}, fingerprint {_printable(sql['fingerprint'])}"
    )
    destructive = [s for s in sql["statements"] if s["destructive"]]
    for statement in destructive[:20]:
        tables = ", ".join(_printable(t) for t in statement["tables"])
        lines.append(
            f"-- prodguard:   statement {statement['index']} (line {statement['line']}): "
            f"{_printable(statement['kind'])}{' on ' + tables if tables else ''}"
        )
    if len(destructive) > 20:
        lines.append(f"-- prodguard:   and {len(destructive) - 20} more destructive statements")
    lines.append(
        "-- prodguard: nothing ran; apply it guarded: "
        f"prodguard sql exec --dialect {_DIALECTS[backend]} --target {_printable(target)} FILE"
    )
    return lines


def _run_offline(env: Any, offline: Callable[[], Any], url: Any, target: str) -> None:
    from sqlalchemy.engine import make_url

    config = env.config
    saved = config.output_buffer
    out = saved if saved is not None else sys.stdout
    captured = io.StringIO()
    config.output_buffer = captured
    try:
        offline()
    finally:
        config.output_buffer = saved
        script = captured.getvalue()
        if script:
            header = _header(script, make_url(url).get_backend_name(), target)
            out.write("\n".join(header) + "\n")
            out.write(script)
