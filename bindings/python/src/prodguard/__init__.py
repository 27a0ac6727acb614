"""prodguard: is this production? — and guards for what can hurt it.

A thin translation of libprodguard (the C ABI) through ctypes: every
decision is made by prodguard's Rust core, bundled in this package.

    import prodguard

    print(prodguard.detect().tier)
    with prodguard.Guard() as guard:
        guard.run("db.migrate", "orders", apply_migration)

Refusals raise :class:`Refused` subclasses (``exit_code`` 120-125, as the
``prodguard`` CLI exits); other failures of the library raise :class:`Error`.
"""

from ._errors import (
    AuditUnavailable,
    BackupFailed,
    Denied,
    EnvMismatch,
    Error,
    InternalError,
    InvalidArgument,
    IoError,
    NotConfirmed,
    OperationFailed,
    PolicyError,
    LockHeld,
    Refused,
)
from ._guard import Detection, Guard, detect, evaluate, library_version, verify_audit_log

__version__ = "0.1.0"

__all__ = [
    "AuditUnavailable",
    "BackupFailed",
    "Denied",
    "Detection",
    "EnvMismatch",
    "Error",
    "Guard",
    "InternalError",
    "InvalidArgument",
    "IoError",
    "NotConfirmed",
    "OperationFailed",
    "PolicyError",
    "LockHeld",
    "Refused",
    "detect",
    "evaluate",
    "library_version",
    "verify_audit_log",
]
