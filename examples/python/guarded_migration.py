#!/usr/bin/env python3
"""A guarded SQLite migration from Python through libprodguard (ctypes only).

    cargo build -p prodguard-ffi
    PRODGUARD_ENV=development python3 examples/python/guarded_migration.py orders.db

In development the migration runs and is audited; in production (or an
undeclared environment) without an approval or a terminal it is refused with
the same exit codes as the CLI (121: confirmation missing).
"""
import ctypes
import os
import sqlite3
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_LIB = os.path.join(HERE, "..", "..", "target", "debug", "libprodguard.so")

lib = ctypes.CDLL(os.environ.get("PRODGUARD_LIB", DEFAULT_LIB))
lib.prodguard_version.restype = ctypes.c_char_p
lib.prodguard_last_error.restype = ctypes.c_char_p
lib.prodguard_guard_new.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
lib.prodguard_guard_new.restype = ctypes.c_int
lib.prodguard_guard_free.argtypes = [ctypes.c_void_p]
OPERATION = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)
lib.prodguard_run.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, OPERATION, ctypes.c_void_p]
lib.prodguard_run.restype = ctypes.c_int


def last_error():
    return lib.prodguard_last_error().decode("utf-8", "replace")


def main(db_path):
    guard = ctypes.c_void_p()
    status = lib.prodguard_guard_new(None, ctypes.byref(guard))
    if status != 0:
        print(f"prodguard: {last_error()}", file=sys.stderr)
        return status

    def migrate(_user_data):
        # Any exception must become a non-zero return: it cannot cross into C.
        try:
            with sqlite3.connect(db_path) as db:
                db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT)")
                columns = [row[1] for row in db.execute("PRAGMA table_info(orders)")]
                if "shipped_at" not in columns:
                    db.execute("ALTER TABLE orders ADD COLUMN shipped_at TEXT")
            return 0
        except BaseException as error:  # noqa: BLE001 - nothing may cross into C
            print(f"migration failed: {error}", file=sys.stderr)
            return 1

    callback = OPERATION(migrate)
    status = lib.prodguard_run(guard, b"db.migrate", os.path.basename(db_path).encode(), callback, None)
    if status == 0:
        print(f"migrated {db_path} (prodguard {lib.prodguard_version().decode()})")
    else:
        print(f"prodguard: refused or failed ({status}): {last_error()}", file=sys.stderr)
    lib.prodguard_guard_free(guard)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "orders.db"))
