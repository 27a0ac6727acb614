"""The exceptions: one class per `prodguard_status` the C ABI returns."""

from __future__ import annotations

from typing import Dict, Type

__all__ = [
    "Error",
    "OperationFailed",
    "InvalidArgument",
    "InternalError",
    "IoError",
    "Refused",
    "Denied",
    "NotConfirmed",
    "BackupFailed",
    "AuditUnavailable",
    "EnvMismatch",
    "PolicyError",
    "LockHeld",
    "error_for",
]


class Error(Exception):
    """A failure reported by libprodguard.

    ``status`` is the ``prodguard_status`` the C call returned and
    ``message`` what ``prodguard_last_error()`` said about it. A status this
    package does not know (a newer library) is raised as ``Error`` itself.
    """

    status: int
    message: str

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status})"


class OperationFailed(Error):
    """``PRODGUARD_OPERATION_FAILED`` (1): the guarded work ran and failed.

    ``Guard.run`` re-raises the work's own exception instead; this is raised
    only if the library reports a failure the work did not raise.
    """


class InvalidArgument(Error, ValueError):
    """``PRODGUARD_INVALID_ARGUMENT`` (2): a string is not UTF-8, holds a NUL
    character, or a required argument is missing."""


class InternalError(Error):
    """``PRODGUARD_PANIC`` (3): prodguard failed internally (a bug; please
    report it). The process is unharmed."""


class IoError(Error):
    """``PRODGUARD_IO_ERROR`` (4): an I/O error outside the guard's own
    refusals (e.g. an audit log that cannot be read for verification)."""


class Refused(Error):
    """The guard refused: the work did not run. ``exit_code`` is what the
    ``prodguard`` CLI would exit with (120-125, or 75 for a fleet lock)."""

    @property
    def exit_code(self) -> int:
        return self.status


class Denied(Refused):
    """120: denied by a policy rule."""


class NotConfirmed(Refused):
    """121: a confirmation is missing or was declined (e.g. no terminal, or
    an approval token that does not approve this run)."""


class BackupFailed(Refused):
    """122: the backup requirement was not met."""


class AuditUnavailable(Refused):
    """123: the audit log cannot take the records."""


class EnvMismatch(Refused):
    """124: the target's environment stamp names another environment."""


class PolicyError(Refused):
    """125: a usage or policy error (a bad policy file, an invalid operation
    name or target)."""


class LockHeld(Refused):
    """75: another host holds the fleet lock of this operation and target
    (fleet mode); running again later may work."""


_BY_STATUS: Dict[int, Type[Error]] = {
    1: OperationFailed,
    2: InvalidArgument,
    3: InternalError,
    4: IoError,
    75: LockHeld,
    120: Denied,
    121: NotConfirmed,
    122: BackupFailed,
    123: AuditUnavailable,
    124: EnvMismatch,
    125: PolicyError,
}


def error_for(status: int, message: str) -> Error:
    """The exception for a non-zero ``status``; unknown statuses are ``Error``."""
    return _BY_STATUS.get(status, Error)(message, status)
