"""``flush``, run as the guarded operation ``db.delete.all``."""

from django.core.management.commands import flush

from ... import guarded_command

Command = guarded_command(flush.Command, "db.delete.all")
