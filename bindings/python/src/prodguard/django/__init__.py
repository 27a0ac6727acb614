"""Django: ``migrate`` and ``flush`` under prodguard.

Add ``"prodguard.django"`` to ``INSTALLED_APPS``; then::

    python manage.py guarded_migrate [migrate's arguments] [--approval TOKEN] [--fingerprint F]
    python manage.py guarded_flush   [flush's arguments]   [--approval TOKEN] [--fingerprint F]

They are Django's own ``migrate`` and ``flush``, run as the guarded
operations ``db.migrate`` and ``db.delete.all`` on the database they act on
(``--database``): its NAME for SQLite (the file's stamp is checked), else
``vendor://USER@HOST:PORT/NAME`` — never its password. A refusal is a
``CommandError`` with the refusal's exit code (120-125) as its
``returncode``, so ``manage.py`` exits with it; the
:class:`prodguard.Refused` is its ``__cause__``.
"""

from __future__ import annotations

from typing import Any, Type

__all__ = ["guarded_command", "database_target"]


def database_target(alias: str = "default") -> str:
    """The target for the Django database ``alias``, without its password."""
    from django.db import connections

    from .._targets import settings_target

    connection = connections[alias]
    return settings_target(connection.vendor, connection.settings_dict)


def guarded_command(base: Type[Any], operation: str) -> Type[Any]:
    """A management command class that is ``base`` run under a guard as
    ``operation`` (also for wrapping a project's own commands)."""
    from django.core.management.base import CommandError
    from django.db import DEFAULT_DB_ALIAS

    from .._errors import Refused
    from .._guard import Guard

    class Command(base):  # type: ignore[misc, valid-type]
        help = f"{base.help} Runs under prodguard as `{operation}`.".strip()

        def add_arguments(self, parser: Any) -> None:
            super().add_arguments(parser)
            parser.add_argument(
                "--approval",
                help="an approval token from `prodguard approve` (default: PRODGUARD_APPROVAL)",
            )
            parser.add_argument(
                "--fingerprint",
                help="what exactly is done (an approval binds it)",
            )

        def handle(self, *args: Any, **options: Any) -> Any:
            approval = options.pop("approval", None)
            fingerprint = options.pop("fingerprint", None)
            target = database_target(options.get("database") or DEFAULT_DB_ALIAS)
            parent = super()
            try:
                with Guard() as guard:
                    return guard.run(
                        operation,
                        target,
                        lambda: parent.handle(*args, **options),
                        fingerprint=fingerprint,
                        approval=approval,
                    )
            except Refused as refused:
                raise CommandError(f"prodguard: {refused.message}", returncode=refused.exit_code) from refused

    Command.__name__ = f"Guarded{base.__name__}"
    return Command
