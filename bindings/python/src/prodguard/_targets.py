"""Targets for database connections, as integrations name them.

A target is what a person types to confirm and what an approval names, so
it must never carry a password. SQLite databases are named by their file's
path, as ``prodguard exec --target app.db`` names them, so the file's
environment stamp (``prodguard stamp``) is checked; every other database by
a URL without password or driver (``postgresql://app@db.internal:5432/shop``).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional
from urllib.parse import quote


def url_target(url: Any) -> str:
    """The target for an SQLAlchemy URL (a string or ``sqlalchemy.engine.URL``)."""
    from sqlalchemy.engine import URL, make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.database or ":memory:"
    query = {key: value for key, value in parsed.query.items() if key.lower() != "password"}
    # Made anew: URL.set(password=None) would keep the password.
    bare = URL.create(backend, parsed.username, None, parsed.host, parsed.port, parsed.database, query)
    return bare.render_as_string(hide_password=False)


def settings_target(vendor: str, settings: Mapping[str, Any]) -> str:
    """The target for a Django database (``connection.vendor`` and its
    ``settings_dict``): NAME for SQLite, else vendor://USER@HOST:PORT/NAME."""
    name = str(settings.get("NAME") or "")
    if vendor == "sqlite":
        return name or ":memory:"
    user: Optional[str] = settings.get("USER") or None
    host = str(settings.get("HOST") or "")
    port = str(settings.get("PORT") or "")
    authority = (quote(user, safe="") + "@" if user else "") + host + (":" + port if port else "")
    return f"{vendor}://{authority}/{quote(name, safe='')}"
