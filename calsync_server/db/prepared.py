"""Core statements compiled once per dialect and run on the connection's own DB-API cursor.

For the few statements every webhook runs: SQLAlchemy's work per execution (the compiled
cache's lookup, the execution context, the result's metadata) cost three to five times what
SQLite spends running them. The statement is still written in Core and its columns' types
still convert the values both ways (their bind and result processors), inside the caller's
transaction; a driver's error is raised as SQLAlchemy's (so `is_outage` reads it as ever).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # Positional drivers (SQLite's qmark): the parameters' names in order; None for named ones.
    order: tuple[str, ...] | None
    # Values the statement itself holds (a literal compared or set), by parameter name.
    fixed: dict[str, Any]
    binds: dict[str, Processor]
    # Positional drivers: the values in the statement's order (itemgetter's loop is C's).
    pick: Callable[[Mapping[str, Any]], tuple[Any, ...]] | None


class Prepared:
    """One Core statement (no expanding IN lists), run with `execute`, `execute_many` or
    `rows` on a SQLAlchemy connection."""

    def __init__(self, statement: sa.Select[*tuple[Any, ...]] | sa.Update | sa.Insert) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}
        # Each result shape's row type and processors, by the cursor's column names.
        self._results: dict[tuple[str, tuple[str, ...]], tuple[Any, list[Processor | None]]] = {}

    def _compile(self, dialect: sa.Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            done = self.statement.compile(dialect=dialect)
            binds: dict[str, Processor] = {}
            fixed: dict[str, Any] = {}
            for name, bind in done.binds.items():
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    binds[name] = processor
                if not bind.required:
                    fixed[name] = bind.effective_value
            order = tuple(done.positiontup or ()) if done.positional else None
            compiled = self._compiled[dialect.name] = _Compiled(
                done.string, order, fixed, binds, _picker(order)
            )
        return compiled

    def _parameters(self, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        values = {**compiled.fixed, **params} if compiled.fixed else dict(params)
        for name, processor in compiled.binds.items():
            values[name] = processor(values[name])
        return values if compiled.pick is None else compiled.pick(values)

    def execute(self, connection: sa.Connection, params: Mapping[str, Any]) -> int:
        """Run it once; the driver's row count (rows an UPDATE matched)."""
        compiled = self._compile(connection.dialect)
        parameters = self._parameters(compiled, params)
        with _cursor(connection, compiled.sql, parameters) as cursor:
            cursor.execute(compiled.sql, parameters)
            return int(cursor.rowcount)

    def execute_many(
        self,
        connection: sa.Connection,
        rows: Sequence[Mapping[str, Any]],
        shared: Mapping[str, Any] | None = None,
    ) -> None:
        """Run it once per row of parameters, in one driver call; `shared`: the values every
        row has (converted once: a timestamp's conversion was a row's largest cost)."""
        compiled = self._compile(connection.dialect)
        if shared:
            common = {
                name: compiled.binds[name](value) if name in compiled.binds else value
                for name, value in shared.items()
            }
            compiled = replace(
                compiled,
                fixed={**compiled.fixed, **common},
                binds={k: v for k, v in compiled.binds.items() if k not in common},
            )
        parameters = [self._parameters(compiled, row) for row in rows]
        with _cursor(connection, compiled.sql, parameters) as cursor:
            cursor.executemany(compiled.sql, parameters)

    def rows(self, connection: sa.Connection, params: Mapping[str, Any]) -> list[Any]:
        """Run a query (or a statement with RETURNING); its rows as named tuples of converted
        values."""
        compiled = self._compile(connection.dialect)
        parameters = self._parameters(compiled, params)
        with _cursor(connection, compiled.sql, parameters) as cursor:
            cursor.execute(compiled.sql, parameters)
            fetched = cursor.fetchall()
            names = tuple(column[0] for column in cursor.description)
        row_type, processors = self._result_shape(connection.dialect, names)
        if not any(processors):
            return [row_type._make(row) for row in fetched]
        return [
            row_type._make(
                value if processor is None else processor(value)
                for processor, value in zip(processors, row, strict=True)
            )
            for row in fetched
        ]

    def _result_shape(
        self, dialect: sa.Dialect, names: tuple[str, ...]
    ) -> tuple[Any, list[Processor | None]]:
        shape = self._results.get((dialect.name, names))
        if shape is None:
            # A query's columns, or those an UPDATE or INSERT returns.
            columns = self.statement.exported_columns
            processors: list[Processor | None] = [
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            ]
            row_type: Any = namedtuple("Row", names, rename=True)  # type: ignore[misc]
            shape = self._results[(dialect.name, names)] = (row_type, processors)
        return shape


def _picker(order: tuple[str, ...] | None) -> Callable[[Mapping[str, Any]], tuple[Any, ...]] | None:
    """A function taking the values of `order` out of a mapping, as a tuple."""
    if order is None:
        return None
    if len(order) < 2:  # itemgetter takes at least one name, and gives one value for one
        return lambda values: tuple(values[name] for name in order)
    return itemgetter(*order)


@contextmanager
def _cursor(connection: sa.Connection, sql: str, parameters: Any) -> Iterator[Any]:
    """A cursor of the connection's DB-API connection (in its transaction), closed after; a
    driver error comes out as SQLAlchemy's DBAPIError subclass, as Connection.execute raises."""
    dialect = connection.dialect
    cursor = connection.connection.cursor()
    try:
        yield cursor
    except dialect.loaded_dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(
            sql, parameters, exc, dialect.loaded_dbapi.Error, dialect=dialect
        ) from exc
    finally:
        cursor.close()
