"""Plans: how each model table is copied, its rows converted and ordered, and the fingerprint of the source rows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .common import ConversionError, MoveRefused
from .convert import Converter, TableStats, make_converter
from .report import Report

#: Rows named per column for conversions worth looking at (NUL removed, Latin-1 read).
EXAMPLES_PER_COLUMN = 3


@dataclass
class TablePlan:
    """How one model table is copied."""

    table: Any
    """The model table."""
    columns: list[str]
    """Columns read from the source and written (the model's, that the source has)."""
    insert: Any
    """INSERT into the target (JSON columns keep SQL NULL apart from JSON null)."""
    converters: list[tuple[int, str, Converter, type | None]]
    """(position, column, convert, fast type) of every column."""
    pk_positions: list[int]
    stats: TableStats
    self_refs: list[tuple[int, int]]
    """(position of the referencing column, position of the referenced one) of foreign keys to itself."""
    copied: int = 0


def build_plans(metadata: Any, source_columns: dict[str, list[str]], report: Report) -> list[TablePlan]:
    """One plan per model table, in foreign-key order; refuses a model NOT NULL column the source lacks."""
    import sqlalchemy as sa

    missing_tables = [t.name for t in metadata.sorted_tables if t.name not in source_columns]
    if missing_tables:
        raise MoveRefused(
            f"the source lacks model table(s) {', '.join(missing_tables)}: it is not this release's schema"
        )
    plans = []
    for table in metadata.sorted_tables:
        present = source_columns[table.name]
        extra = [name for name in present if name not in table.c]
        if extra:
            report.line(f"table {table.name}: source column(s) the models lack, not copied: {', '.join(extra)}")
        lacking = [column for column in table.columns if column.name not in present]
        required = [column.name for column in lacking if not column.nullable]
        if required:
            raise MoveRefused(
                f"the source table {table.name} lacks the NOT NULL column(s) {', '.join(required)} of the models"
            )
        if lacking:
            report.line(
                f"table {table.name}: column(s) the source lacks get NULL or their default: "
                f"{', '.join(column.name for column in lacking)}"
            )
        columns = [column.name for column in table.columns if column.name in present]
        # A copy of the table whose JSON columns write None as SQL NULL (JSON null is passed as JSON.NULL).
        target = table.to_metadata(sa.MetaData())
        for column in target.columns:
            if isinstance(column.type, sa.JSON):
                column.type = column.type.copy()
                column.type.none_as_null = True
        stats = TableStats()
        position = {name: index for index, name in enumerate(columns)}
        self_refs = [
            (position[fk.parent.name], position[fk.column.name])
            for fk in table.foreign_keys
            if fk.column.table is table and fk.parent.name in position and fk.column.name in position
        ]
        plans.append(
            TablePlan(
                table=table,
                columns=columns,
                insert=target.insert(),
                converters=[
                    (index, name, converter.convert, converter.fast)
                    for index, name in enumerate(columns)
                    for converter in [make_converter(table.c[name], stats)]
                ],
                pk_positions=[position[c.name] for c in table.primary_key.columns if c.name in position],
                stats=stats,
                self_refs=self_refs,
            )
        )
    return plans


def key_text(plan: TablePlan, raw: tuple[Any, ...]) -> str:
    """A row's primary key, readable, e.g. `id=5` or `entity_id='a', event_id='b'`."""
    parts = []
    for position in plan.pk_positions:
        value = raw[position]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        parts.append(f"{plan.columns[position]}={value!r}")
    return ", ".join(parts) or "(no primary key)"


def hash_table(hasher: Any, plan: TablePlan) -> None:
    """Start a table in the fingerprint."""
    hasher.update(f"\ntable {plan.table.name} {','.join(plan.columns)}\n".encode())


def hash_rows(hasher: Any, rows: list[tuple[Any, ...]]) -> None:
    """Add rows (raw source values) to the fingerprint."""
    for row in rows:
        hasher.update(repr(row).encode("utf-8", "backslashreplace"))
        hasher.update(b"\n")


def fingerprint(source: Any, plans: list[TablePlan], revisions: list[str]) -> str:
    """SHA-256 over every model table's rows (name, then raw values in key order) and the revision."""
    hasher = hashlib.sha256()
    for plan in plans:
        hash_table(hasher, plan)
        for rows in source.batches(plan.table, plan.columns):
            hash_rows(hasher, rows)
    hasher.update(f"\nrevision {','.join(revisions)}\n".encode())
    return hasher.hexdigest()


def convert_rows(plan: TablePlan, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Source rows as the target's parameter dicts; refuses a value that cannot be converted."""
    names = plan.columns
    converters = plan.converters
    stats = plan.stats
    events = stats.events
    out = []
    for raw in rows:
        values = dict(zip(names, raw, strict=True))
        for index, name, convert, fast in converters:
            value = raw[index]
            # NULL stays NULL; a value already of the target's Python type needs nothing (the hot path).
            if value is None or type(value) is fast:
                continue
            try:
                values[name] = convert(value)
            except ConversionError as exc:
                raise MoveRefused(
                    f"table {plan.table.name}, column {name}, row {key_text(plan, raw)}: {exc}; nothing was changed"
                ) from exc
        if events:
            for key in events:
                examples = stats.examples.setdefault(key, [])
                if len(examples) < EXAMPLES_PER_COLUMN:
                    examples.append(key_text(plan, raw))
            events.clear()
        out.append(values)
    return out


def parents_first(plan: TablePlan, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a table with a foreign key to itself, each referenced row before the rows referencing it.

    A depth-first walk up each row's parents; a reference to a row that is not in the table (the
    database rejects it and names it) or a cycle keeps the source's order.
    """
    names = plan.columns
    refs = [(names[source], names[target]) for source, target in plan.self_refs]
    where = {target: {row[target]: index for index, row in enumerate(rows)} for _, target in refs}
    parents: list[list[int]] = []
    for index, row in enumerate(rows):
        found = [where[target].get(row[source]) for source, target in refs if row[source] is not None]
        parents.append([parent for parent in found if parent is not None and parent != index])
    new, visiting, placed = 0, 1, 2
    state = [new] * len(rows)
    ordered: list[dict[str, Any]] = []
    for start in range(len(rows)):
        if state[start] != new:
            continue
        state[start] = visiting
        stack = [(start, iter(parents[start]))]
        while stack:
            node, pending = stack[-1]
            parent = next(pending, None)
            if parent is None:
                stack.pop()
                state[node] = placed
                ordered.append(rows[node])
            elif state[parent] == new:
                state[parent] = visiting
                stack.append((parent, iter(parents[parent])))
    return ordered
