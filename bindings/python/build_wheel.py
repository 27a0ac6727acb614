#!/usr/bin/env python3
"""Writes the prodguard wheel (PEP 427) with the standard library alone.

    python3 bindings/python/build_wheel.py --lib target/release/libprodguard.so --out DIR

The package is `src/prodguard` plus the library, copied in beside it. The
tag is `py3-none-<this machine's platform>`: the package is pure Python over
ctypes (any Python 3, no CPython ABI), the library is this platform's. The
archive is reproducible: entries sorted, fixed timestamps (SOURCE_DATE_EPOCH,
else 1980-01-01), fixed permissions, no machine paths written by this script;
`--forbid TEXT` fails the build when any file holds TEXT (scripts/build-python
passes the checkout's and Cargo's directories for a release build).
Prints the wheel's path.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import re
import sys
import sysconfig
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PACKAGE = os.path.join(HERE, "src", "prodguard")
NAME = "prodguard"


def workspace_version() -> str:
    """The workspace's version (Cargo.toml, [workspace.package]): the library's and the wheel's."""
    text = open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8").read()
    section = re.search(r"^\[workspace\.package\]\s*$(.*?)(?=^\[)", text, re.M | re.S)
    found = section and re.search(r'^version\s*=\s*"([^"]+)"', section.group(1), re.M)
    if not found:
        sys.exit("build_wheel: no version in Cargo.toml's [workspace.package]")
    return found.group(1)


def package_version() -> str:
    text = open(os.path.join(PACKAGE, "__init__.py"), encoding="utf-8").read()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if not found:
        sys.exit("build_wheel: no __version__ in src/prodguard/__init__.py")
    return found.group(1)


def platform_tag() -> str:
    """PEP 425's platform tag for this interpreter's platform (e.g. linux_x86_64)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", sysconfig.get_platform())


def metadata(version: str) -> str:
    readme = open(os.path.join(HERE, "README.md"), encoding="utf-8").read()
    headers = [
        "Metadata-Version: 2.1",
        f"Name: {NAME}",
        f"Version: {version}",
        "Summary: Is this production? Guards for what can hurt it (libprodguard through ctypes)",
        "Home-page: https://github.com/prodguard/prodguard",
        "License: MIT OR Apache-2.0",
        "Requires-Python: >=3.8",
        "Classifier: Programming Language :: Python :: 3",
        "Classifier: Typing :: Typed",
        "Provides-Extra: alembic",
        'Requires-Dist: alembic>=1.7; extra == "alembic"',
        'Requires-Dist: SQLAlchemy>=1.4; extra == "alembic"',
        "Provides-Extra: django",
        'Requires-Dist: Django>=3.2; extra == "django"',
        "Description-Content-Type: text/markdown",
    ]
    return "\n".join(headers) + "\n\n" + readme


def wheel_file(tag: str) -> str:
    return (
        "Wheel-Version: 1.0\n"
        "Generator: prodguard build_wheel.py\n"
        "Root-Is-Purelib: false\n"
        f"Tag: {tag}\n"
    )


def package_files(lib: str):
    """(archive name, bytes, executable) for the package and the library."""
    files = []
    for dirpath, dirnames, filenames in os.walk(PACKAGE):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in filenames:
            if name.endswith((".pyc", ".pyo")) or name.startswith("libprodguard.") or name == "prodguard.dll":
                continue
            path = os.path.join(dirpath, name)
            arcname = NAME + "/" + os.path.relpath(path, PACKAGE).replace(os.sep, "/")
            with open(path, "rb") as f:
                files.append((arcname, f.read(), False))
    with open(lib, "rb") as f:
        files.append((f"{NAME}/{os.path.basename(lib)}", f.read(), True))
    return files


def record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", required=True, help="the built libprodguard shared library")
    parser.add_argument("--out", required=True, help="the directory to write the wheel to")
    parser.add_argument("--forbid", action="append", default=[], help="fail if any file contains this text")
    args = parser.parse_args()

    version = workspace_version()
    if package_version() != version:
        sys.exit(
            f"build_wheel: src/prodguard/__init__.py says {package_version()}, "
            f"Cargo.toml says {version}: make them agree"
        )
    tag = f"py3-none-{platform_tag()}"
    dist_info = f"{NAME}-{version}.dist-info"
    files = package_files(args.lib)
    files.append((f"{dist_info}/METADATA", metadata(version).encode("utf-8"), False))
    files.append((f"{dist_info}/WHEEL", wheel_file(tag).encode("utf-8"), False))
    files.sort(key=lambda f: f[0])

    for text in filter(None, args.forbid):
        needle = text.encode("utf-8")
        for arcname, data, _ in files:
            if needle in data:
                sys.exit(f"build_wheel: {arcname} contains the machine path {text!r}; refusing to package it")

    record = [record_line(arcname, data) for arcname, data, _ in files]
    record.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode("utf-8"), False))

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    date_time = time.gmtime(max(epoch, 315532800))[:6]
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{NAME}-{version}-{tag}.whl")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for arcname, data, executable in files:
            info = zipfile.ZipInfo(arcname, date_time=date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the permissions below are read
            info.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
            archive.writestr(info, data, compresslevel=9)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buffer.getvalue())
    os.replace(tmp, path)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
