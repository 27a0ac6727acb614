"""`Guard`, `detect()` and the handle-less calls, over libprodguard."""

from __future__ import annotations

import ctypes
import json
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, TypeVar

from . import _ffi
from ._errors import error_for
from ._ffi import StrArg, c_string, check, lib, take_string

T = TypeVar("T")

# The operation's fields, in the order Guard.run takes them.
_FIELDS = [
    (_ffi.FIELD_TARGET, "target"),
    (_ffi.FIELD_FINGERPRINT, "fingerprint"),
    (_ffi.FIELD_APPROVAL, "approval"),
    (_ffi.FIELD_ROLLBACK, "rollback"),
]

__all__ = ["Detection", "Guard", "detect", "evaluate", "verify_audit_log", "library_version"]


@dataclass(frozen=True)
class Detection:
    """The detected environment, as ``prodguard detect --json`` prints it."""

    #: The environment's own name (e.g. ``prod-eu``).
    environment: str
    #: ``production``, ``staging``, ``development``, ``test``, ``local`` or ``unknown``.
    tier: str
    #: Whether guards apply here (production, or unknown by default).
    protected: bool
    #: The signal that decided it, e.g. ``env:PRODGUARD_ENV``, or ``default``.
    decided_by: str
    #: Every signal looked at (``source``, ``value``, ``tier``, ``used``, ``meaning`` …).
    evidence: List[Dict[str, Any]] = field(default_factory=list)
    #: Signals that disagreed (the more sensitive tier won).
    conflicts: List[Dict[str, Any]] = field(default_factory=list)
    #: The whole answer, including fields newer libraries may add.
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "Detection":
        return cls(
            environment=value["environment"],
            tier=value["tier"],
            protected=bool(value["protected"]),
            decided_by=value["decided_by"],
            evidence=list(value.get("evidence", [])),
            conflicts=list(value.get("conflicts", [])),
            raw=dict(value),
        )


class Guard:
    """A guard: the policy, the detected environment and the audit log.

    ``policy`` is a policy file's path, or None for the default layering
    (``PRODGUARD_POLICY``, ``./prodguard.toml``, the built-in default; under
    a system policy, layered over ``/etc/prodguard/policy.toml``). The
    environment is detected once, when the guard is made.

    A guard may be used from many threads at once (libprodguard's promise);
    it is released by ``close()``, at the end of a ``with`` block, or when it
    is garbage-collected.
    """

    def __init__(self, policy: Optional[StrArg] = None) -> None:
        path = c_string(policy, "policy")
        handle = ctypes.c_void_p()
        check(lib.prodguard_guard_new(path, ctypes.byref(handle)))
        self._handle: Optional[int] = handle.value
        self._lock = threading.Lock()
        self._in_use = 0
        self._finalizer = weakref.finalize(self, lib.prodguard_guard_free, handle.value)

    # -- lifetime ---------------------------------------------------------

    def close(self) -> None:
        """Releases the guard (``prodguard_guard_free``); closing twice is a
        no-op. Refused (RuntimeError) while a ``run`` on it is in progress."""
        with self._lock:
            if self._in_use:
                raise RuntimeError("prodguard: this guard is running an operation; close it afterwards")
            self._handle = None
            self._finalizer()

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __enter__(self) -> "Guard":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _acquire(self) -> int:
        with self._lock:
            if self._handle is None:
                raise ValueError("prodguard: the guard is closed")
            self._in_use += 1
            return self._handle

    def _release(self) -> None:
        with self._lock:
            self._in_use -= 1

    # -- calls ------------------------------------------------------------

    def detect(self) -> Detection:
        """The environment this guard detected (``prodguard_detect_json``)."""
        handle = self._acquire()
        try:
            out = ctypes.c_void_p()
            check(lib.prodguard_detect_json(handle, ctypes.byref(out)))
            return Detection.from_json(json.loads(take_string(out.value)))
        finally:
            self._release()

    def run(
        self,
        operation: str,
        target: Optional[str],
        fn: Callable[[], T],
        *,
        fingerprint: Optional[str] = None,
        approval: Optional[str] = None,
        rollback: Optional[str] = None,
    ) -> T:
        """Runs ``fn()`` as the guarded ``operation`` (a dotted name such as
        ``db.migrate``) on ``target`` once every guard passes, records how
        it ended, and returns its value.

        A refusal raises a :class:`prodguard.Refused` subclass and ``fn`` is
        not called. An exception ``fn`` raises is recorded as a failure and
        re-raised unchanged. ``fingerprint`` says what exactly is done (an
        approval binds it); ``approval`` is a token from ``prodguard
        approve`` (None: ``PRODGUARD_APPROVAL``, if set). ``rollback`` is
        its way back, a command that undoes it (``prodguard rollback
        ATTEMPT_ID`` runs it), recorded in the intent.
        """
        if not callable(fn):
            raise TypeError("fn must be callable")
        kind = c_string(operation, "operation")
        if kind is None:
            raise TypeError("operation must be a str")
        values = [
            c_string(target, "target"),
            c_string(fingerprint, "fingerprint"),
            c_string(approval, "approval"),
            c_string(rollback, "rollback"),
        ]
        # What fn did, kept on the Python side: nothing raised by fn ever
        # crosses into C (the callback returns 1 and the exception is
        # re-raised below, after the guard recorded the failure).
        outcome: Dict[str, Any] = {}

        def call(_user_data: Optional[int]) -> int:
            try:
                outcome["value"] = fn()
                return 0
            except BaseException as error:  # noqa: BLE001 - must not reach C
                outcome["error"] = error
                return 1

        callback = _ffi.OPERATION_FN(call)
        handle = self._acquire()
        op = ctypes.c_void_p()
        try:
            status = lib.prodguard_operation_new(kind, ctypes.byref(op))
            if status != _ffi.OK:
                raise error_for(status, f"operation: {_ffi.last_error()}")
            for (which, name), value in zip(_FIELDS, values):
                if value is not None:
                    status = lib.prodguard_operation_set(op, which, value)
                    if status != _ffi.OK:
                        raise error_for(status, f"{name}: {_ffi.last_error()}")
            status = lib.prodguard_operation_run(handle, op, callback, None)
            # Read this thread's error before any other call replaces it.
            message = _ffi.last_error() if status != _ffi.OK else ""
        finally:
            lib.prodguard_operation_free(op)
            self._release()
        if "error" in outcome:
            error = outcome.pop("error")
            try:
                raise error
            finally:
                del error
        if status != _ffi.OK:
            raise error_for(status, message or f"prodguard status {status}")
        return outcome["value"]  # type: ignore[no-any-return]


def detect(policy: Optional[StrArg] = None) -> Detection:
    """The detected environment, with the policy ``policy`` (None: the
    default layering); the policy's aliases and hostname hints count."""
    with Guard(policy) as guard:
        return guard.detect()


def evaluate(request: Mapping[str, Any]) -> Dict[str, Any]:
    """``prodguard_evaluate_json``: the decision for the facts and policy
    the request gives (a dry run; nothing is read from this process but
    the system policy). With ``"sql": {"script", "dialect"}`` the answer
    carries the script's classification (``answer["sql"]``). See
    ``bindings/wasm/ABI.md``. A bad request raises ``PolicyError``."""
    text = c_string(json.dumps(request), "request")
    out = ctypes.c_void_p()
    check(lib.prodguard_evaluate_json(text, ctypes.byref(out)))
    answer: Dict[str, Any] = json.loads(take_string(out.value))
    return answer


def verify_audit_log(path: StrArg) -> int:
    """``prodguard audit verify``'s code for the log at ``path``: 0 intact,
    1 tampered, 2 torn tail, 3 anchor or seal gap. An unreadable log raises
    ``IoError``."""
    code = ctypes.c_int32()
    check(lib.prodguard_audit_verify(c_string(path, "path"), ctypes.byref(code)))
    return code.value


def library_version() -> str:
    """libprodguard's version, e.g. ``0.1.0``."""
    version = lib.prodguard_version()
    return version.decode("ascii") if version else ""

