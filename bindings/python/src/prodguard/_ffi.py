"""libprodguard through ctypes: the library bundled in this package, its
function signatures, and the conversions at the boundary (strings in,
strings out, statuses to exceptions). Nothing here decides anything."""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Optional, Union

from ._errors import InvalidArgument, error_for

_HERE = os.path.dirname(os.path.abspath(__file__))

if sys.platform == "darwin":
    _LIB_NAME = "libprodguard.dylib"
elif sys.platform == "win32":
    _LIB_NAME = "prodguard.dll"
else:
    _LIB_NAME = "libprodguard.so"

#: Where the bundled library is. Only this file is loaded: no variable
#: swaps the engine that makes the decisions.
LIBRARY_PATH = os.path.join(_HERE, _LIB_NAME)


def _load() -> ctypes.CDLL:
    if not os.path.exists(LIBRARY_PATH):
        raise ImportError(
            f"prodguard: the bundled library {LIBRARY_PATH} is missing; install "
            "prodguard from its wheel (scripts/build-python builds one)"
        )
    return ctypes.CDLL(LIBRARY_PATH)


lib = _load()

c_void_p = ctypes.c_void_p
c_char_p = ctypes.c_char_p
c_int = ctypes.c_int
c_int32 = ctypes.c_int32

#: `prodguard_operation_fn`: `int32_t (*)(void *user_data)`.
OPERATION_FN = ctypes.CFUNCTYPE(c_int32, c_void_p)

# Strings the library returns and the caller frees are read as void
# pointers, so ctypes does not copy them into bytes and lose the pointer.
lib.prodguard_version.argtypes = []
lib.prodguard_version.restype = c_char_p
lib.prodguard_last_error.argtypes = []
lib.prodguard_last_error.restype = c_char_p
lib.prodguard_guard_new.argtypes = [c_char_p, ctypes.POINTER(c_void_p)]
lib.prodguard_guard_new.restype = c_int
lib.prodguard_guard_free.argtypes = [c_void_p]
lib.prodguard_guard_free.restype = None
lib.prodguard_detect_json.argtypes = [c_void_p, ctypes.POINTER(c_void_p)]
lib.prodguard_detect_json.restype = c_int
lib.prodguard_operation_new.argtypes = [c_char_p, ctypes.POINTER(c_void_p)]
lib.prodguard_operation_new.restype = c_int
lib.prodguard_operation_set.argtypes = [c_void_p, ctypes.c_uint32, c_char_p]
lib.prodguard_operation_set.restype = c_int
lib.prodguard_operation_free.argtypes = [c_void_p]
lib.prodguard_operation_free.restype = None
lib.prodguard_operation_run.argtypes = [c_void_p, c_void_p, OPERATION_FN, c_void_p]
lib.prodguard_operation_run.restype = c_int
lib.prodguard_evaluate_json.argtypes = [c_char_p, ctypes.POINTER(c_void_p)]
lib.prodguard_evaluate_json.restype = c_int
lib.prodguard_audit_verify.argtypes = [c_char_p, ctypes.POINTER(c_int32)]
lib.prodguard_audit_verify.restype = c_int
lib.prodguard_string_free.argtypes = [c_void_p]
lib.prodguard_string_free.restype = None

# `prodguard_operation_field`.
FIELD_TARGET = 0
FIELD_FINGERPRINT = 1
FIELD_APPROVAL = 2
FIELD_ROLLBACK = 3

OK = 0


def last_error() -> str:
    """This thread's last error message from the library."""
    message = lib.prodguard_last_error()
    return message.decode("utf-8", "replace") if message else ""


def check(status: int) -> None:
    """Raises the exception for a non-zero status, with this thread's last
    error. Call it right after the failing call, on the same thread."""
    if status != OK:
        raise error_for(status, last_error() or f"prodguard status {status}")


def take_string(ptr: Optional[int]) -> str:
    """Reads a string the library returned and frees it."""
    if not ptr:
        return ""
    try:
        return ctypes.string_at(ptr).decode("utf-8")
    finally:
        lib.prodguard_string_free(ptr)


StrArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def c_string(value: Optional[StrArg], name: str) -> Optional[bytes]:
    """`value` as a NUL-terminated C string (None stays NULL).

    A ``str`` is encoded as UTF-8 (a lone surrogate cannot be: refused
    here); ``bytes`` go as they are, and the library refuses any that are
    not UTF-8. A NUL character is refused here: C would cut the string at
    it, and the library would see another value than the caller gave.
    """
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InvalidArgument(f"{name} is not valid UTF-8: {error}", 2) from None
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    else:
        raise TypeError(f"{name} must be str or bytes, not {type(value).__name__}")
    if b"\0" in data:
        raise InvalidArgument(f"{name} contains a NUL character", 2)
    return data
