"""The worker's per-message statements, run on the driver's cursor inside the session's transaction.

The worker runs six to eight statements for every message (``bench/RESULTS.md``). Through
``Session.execute`` each costs the client about as much again as the statement costs the driver:
an ORM execution, a ``Connection`` execution context with its events, and a result wrapped row
by row. Here SQLAlchemy still builds each statement and compiles it, once per statement and set
of parameter names. On PostgreSQL the SQL then runs on the driver's cursor of the session's own
connection, inside the session's transaction, which the session commits or rolls back as
before. On SQLite the session runs the statement as usual.

What the driver's path leaves out:

- autoflush: objects added to the session are not flushed first (no statement here reads them);
- execution events;
- SQLAlchemy's result processing. psycopg's own types come back instead: JSON parsed, timestamps
  with their zone, numerics as ``Decimal`` (what SQLAlchemy's PostgreSQL types give as well).

What it does as SQLAlchemy does: columns' Python-side defaults (``default=utcnow``) are filled
in, and JSON parameters are sent as text for the cast that the compiled SQL carries, None as JSON
``null`` (``tests/test_statements.py`` compares the rows both paths store). A driver error is
raised as SQLAlchemy's exception for it (``IntegrityError``, ``OperationalError``…), as a
session execution raises it, and a connection the server dropped is invalidated first, so the
pool does not hand it out again.
"""

from __future__ import annotations

import functools
import json
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import JSON, Executable
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from khaacho.extensions import db

# Positional ``%s`` placeholders: psycopg takes a list, no name-to-value mapping per execution.
_POSITIONAL = postgresql.psycopg.dialect(paramstyle="format")


class Compiled(NamedTuple):
    """A statement's SQL with ``%s`` placeholders, and what it takes to fill them in."""

    sql: str
    names: tuple[str, ...]  # the parameters in placeholder order (a name used twice appears twice)
    fixed: dict[str, Any]  # what the statement binds itself (literals)
    json: dict[str, bool]  # parameters sent as JSON text, and whether None is SQL NULL (else JSON null)
    defaults: dict[str, Any]  # columns' Python-side defaults (``default=utcnow``) by parameter name


def fetch(statement: Executable, params: dict[str, Any]) -> list:
    """Run the statement in the session's transaction; its rows (attribute access by column name)."""
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        result = db.session.execute(statement, params)
        return result.all() if result.returns_rows else []
    compiled = compile_positional(statement, tuple(params))
    values = [_value(name, params, compiled) for name in compiled.names]
    driver = connection.connection.driver_connection
    try:
        with driver.cursor(row_factory=namedtuple_row) as cursor:
            cursor.execute(compiled.sql, values)
            return cursor.fetchall() if cursor.rownumber is not None else []  # None: no rows returned
    except psycopg.Error as exc:
        dropped = connection.dialect.is_disconnect(exc, driver, None)
        if dropped:
            connection.invalidate(exc)
        raise DBAPIError.instance(compiled.sql, values, exc, psycopg.Error,
                                  connection_invalidated=dropped, dialect=connection.dialect) from exc


def first(statement: Executable, params: dict[str, Any]):
    """The statement's first row, or None."""
    rows = fetch(statement, params)
    return rows[0] if rows else None


def _value(name: str, params: dict[str, Any], compiled: Compiled) -> Any:
    if name in params:
        value = params[name]
    elif name in compiled.defaults:
        default = compiled.defaults[name]
        value = default.arg(None) if default.is_callable else default.arg
    else:
        value = compiled.fixed[name]
    if name in compiled.json and not (value is None and compiled.json[name]):
        return json.dumps(value)  # None as JSON null, as SQLAlchemy sends it (unless none_as_null)
    return value


@functools.lru_cache(maxsize=256)
def compile_positional(statement: Executable, keys: tuple[str, ...] = ()) -> Compiled:
    """The statement compiled once for these parameter names (an INSERT's columns come from them),
    for the driver's cursor: ``%s`` placeholders, filled from a list in :attr:`Compiled.names` order."""
    compiled = statement.compile(dialect=_POSITIONAL, column_keys=list(keys))
    json_names = {name: bind.type.none_as_null for name, bind in compiled.binds.items()
                  if isinstance(bind.type, JSON)}
    defaults = {column.key: column.default for column in compiled.insert_prefetch}
    defaults.update((column.key, column.onupdate) for column in compiled.update_prefetch)
    names = tuple(compiled.positiontup or ())
    return Compiled(compiled.string, names, compiled.params, json_names, defaults)
