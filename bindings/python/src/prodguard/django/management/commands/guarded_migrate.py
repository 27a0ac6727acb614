"""``migrate``, run as the guarded operation ``db.migrate``."""

from django.core.management.commands import migrate

from ... import guarded_command

Command = guarded_command(migrate.Command, "db.migrate")
