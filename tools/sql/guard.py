"""The ad-hoc SQL guard: one read-only SELECT over an engine's system views, or a ValueError saying why not.

Parsed with sqlglot, never matched with regular expressions: a single SELECT (UNION and CTEs of
SELECTs allowed), no INTO, no locking clause or table hint, no statement other than SELECT anywhere in
the tree, no comments at all (they can hide statements, e.g. MySQL's /*! ... */), only allow-listed
functions, and only allow-listed system views. Names are resolved scope by scope (sqlglot's scope
analysis): a CTE's name covers only the query it is defined in, never a table outside it. A quoted
name must be written as the view is named (lower case): PostgreSQL's "PG_LOCKS" is another relation. At
most [database.]schema.view (no linked-server four-part names). PostgreSQL's attribute notation for
functions (`a.to_json` is `to_json(a)`) is refused like any other function call.

Nothing in production calls it yet: it is the gate a model-proposed diagnostic query must pass. The
read-only login and session (docs/readonly-logins.md) remain the enforcement underneath it.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError, TokenError
from sqlglot.optimizer.scope import Scope, traverse_scope

from tools.world import Engine

DIALECTS: dict[Engine, str] = {"mssql": "tsql", "postgresql": "postgres", "mysql": "mysql"}

# schema.view patterns (lower case); a pattern without a dot matches an unqualified name
ALLOWED_VIEWS: dict[Engine, tuple[str, ...]] = {
    "mssql": (
        "sys.dm_exec_*", "sys.dm_os_wait_stats", "sys.dm_os_waiting_tasks", "sys.dm_tran_locks",
        "sys.dm_tran_active_transactions", "sys.dm_tran_session_transactions", "sys.dm_db_file_space_usage",
        "sys.dm_db_log_space_usage", "sys.dm_io_virtual_file_stats", "sys.master_files", "sys.database_files",
        "sys.databases", "sys.query_store_*",
    ),
    "postgresql": (
        "pg_stat_activity", "pg_locks", "pg_stat_statements", "pg_stat_database",
        "pg_stat_database_conflicts", "pg_stat_user_tables", "pg_stat_user_indexes", "pg_statio_user_tables",
        "pg_stat_replication",
        "pg_stat_wal", "pg_stat_bgwriter", "pg_stat_progress_*", "pg_prepared_xacts", "pg_replication_slots",
        "pg_database", "pg_settings",
    ),
    "mysql": (
        "performance_schema.*", "information_schema.processlist", "information_schema.innodb_*",
    ),
}  # fmt: skip
PG_SCHEMAS = ("", "pg_catalog", "public")  # where PostgreSQL's statistics views (and pg_stat_statements) live

# functions by sqlglot class: aggregates, conditionals, casts, clocks and simple arithmetic helpers
ALLOWED_FUNCTIONS: tuple[type[exp.Expression], ...] = (
    exp.Count, exp.Sum, exp.Min, exp.Max, exp.Avg, exp.Coalesce, exp.Nullif, exp.Case, exp.If, exp.Cast,
    exp.TryCast, exp.CurrentTimestamp, exp.CurrentDate, exp.Extract, exp.Round, exp.Abs, exp.Greatest,
    exp.Least, exp.Lower, exp.Upper,
)  # fmt: skip
# functions sqlglot does not know (exp.Anonymous), by name, per engine
ALLOWED_NAMED_FUNCTIONS: dict[Engine, frozenset[str]] = {
    "mssql": frozenset({"db_name", "object_name"}),
    "postgresql": frozenset({"pg_blocking_pids"}),
    "mysql": frozenset(),
}
_FORBIDDEN = tuple(
    getattr(exp, name)
    for name in (
        "Into", "Lock", "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Command", "Set",
        "Use", "Transaction", "Commit", "Rollback", "Grant", "Revoke", "TruncateTable", "Copy", "Pragma",
        "LoadData", "Kill", "Execute", "Call",
    )
    if hasattr(exp, name)
)  # fmt: skip


def check_adhoc_sql(sql: str, engine: Engine) -> str:
    """The statement to run, if `sql` is one read-only SELECT over `engine`'s allowed system views.

    Raises ValueError naming what is not allowed (a second statement, a comment, INTO, a function, a
    table) so the caller can say it back to the user."""
    if engine not in DIALECTS:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(DIALECTS)}")
    dialect = DIALECTS[engine]
    try:
        tokens = sqlglot.tokenize(sql, read=dialect)
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except (ParseError, TokenError) as exc:
        raise ValueError(f"could not parse the SQL as {engine}: {str(exc).splitlines()[0]}") from None
    if any(t.comments for t in tokens):
        raise ValueError("comments are not allowed in ad-hoc SQL (they can hide statements)")
    if not statements:
        raise ValueError("no SQL statement given")
    if len(statements) > 1:
        raise ValueError(f"only one statement is allowed, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Select | exp.SetOperation):
        raise ValueError(f"only SELECT is allowed, got {_kind(tree)}")
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN):
            raise ValueError(f"{_kind(node)} is not allowed in ad-hoc SQL: only a plain SELECT")
        if isinstance(node, exp.Func):
            _check_function(node, engine)
        elif isinstance(node, exp.Column) and engine == "postgresql" and node.table:
            _check_attribute_call(node)
        elif isinstance(node, exp.Table) and node.args.get("hints"):
            raise ValueError("table hints (WITH (TABLOCKX), NOLOCK ...) are not allowed in ad-hoc SQL")
    try:
        scopes = traverse_scope(tree)
    except OptimizeError as exc:
        raise ValueError(f"could not resolve the names of the SQL: {exc}") from None
    checked: set[int] = set()
    for scope in scopes:
        for table in scope.tables:
            if isinstance(scope.sources.get(table.alias_or_name), Scope) and len(table.parts) == 1:
                continue  # a CTE visible in this scope, not a table
            checked.add(id(table))
            _check_table(table, engine)
    for table in tree.find_all(exp.Table):  # anything the scopes did not reach is a table too
        if id(table) not in checked and not _is_cte_reference(table, scopes):
            _check_table(table, engine)
    return tree.sql(dialect=dialect)


def _is_cte_reference(table: exp.Table, scopes: list[Scope]) -> bool:
    return any(
        table in scope.tables and isinstance(scope.sources.get(table.alias_or_name), Scope)
        for scope in scopes
    )


# functions PostgreSQL lets a query call in attribute notation (`a.to_json`): names that read whole
# rows, convert them or have side effects; a qualified "column" with such a name is a function call
_PG_ATTRIBUTE_FUNCTION = re.compile(
    r"^(to_json|to_jsonb|row_to_json|json_|jsonb_|array_|string_agg|xml|query_to|table_to|cursor_to|pg_|"
    r"set_config|current_setting|txid_|lo_|dblink|format|concat|text|textin|textout|record_out)"
)


def _check_attribute_call(column: exp.Column) -> None:
    name = column.name.lower()
    if _PG_ATTRIBUTE_FUNCTION.match(name):
        raise ValueError(
            f"{column.table}.{column.name} is not allowed in ad-hoc SQL: PostgreSQL reads it as the function "
            f"call {column.name}({column.table})"
        )


def _kind(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return {"Into": "SELECT ... INTO", "Lock": "a locking clause (FOR UPDATE/SHARE)"}.get(
        type(node).__name__, type(node).__name__.upper()
    )


def _qualified(node: exp.Expr) -> str:
    """`sys.dm_exec_sql_text` for a function called through a schema (a Dot in sqlglot's tree)."""
    name = node.name
    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        return f"{parent.this.sql()}.{name}"
    return name


def _check_function(node: exp.Func, engine: Engine) -> None:
    if isinstance(node, ALLOWED_FUNCTIONS) and not isinstance(node.parent, exp.Dot):
        return
    if isinstance(node, exp.Anonymous):
        name = _qualified(node).lower()
        if name in ALLOWED_NAMED_FUNCTIONS[engine]:
            return
        # table-valued system functions named like allowed views: CROSS APPLY sys.dm_exec_sql_text(...)
        if "." in name and _view_allowed(engine, *name.rsplit(".", 1)):
            return
        raise ValueError(f"function {name} is not allowed in ad-hoc SQL")
    raise ValueError(f"function {node.sql_name().lower()} is not allowed in ad-hoc SQL")


def _check_table(node: exp.Table, engine: Engine) -> None:
    parts = node.parts
    shown = ".".join(p.name for p in parts)
    if len(parts) > (3 if engine == "mssql" else 2):
        raise ValueError(
            f"table {shown} is not allowed in ad-hoc SQL: at most [database.]schema.view, no linked servers"
        )
    for part in parts:
        if isinstance(part, exp.Identifier) and part.quoted and part.name != part.name.lower():
            raise ValueError(
                f"table {shown} is not allowed in ad-hoc SQL: a quoted name must be written in lower case "
                "as the "
                "view is named (a quoted upper-case name is another object)"
            )
    schema, name = node.db.lower(), node.name.lower()
    if not _view_allowed(engine, schema, name):
        allowed = ", ".join(ALLOWED_VIEWS[engine])
        raise ValueError(f"table {shown} is not allowed in ad-hoc SQL; allowed for {engine}: {allowed}")


def _view_allowed(engine: Engine, schema: str, name: str) -> bool:
    schema = schema.split(".")[-1].lower()  # master.sys -> sys: any database's system views
    if engine == "postgresql":
        return schema in PG_SCHEMAS and any(fnmatchcase(name, p) for p in ALLOWED_VIEWS[engine])
    return bool(schema) and any(fnmatchcase(f"{schema}.{name}", p) for p in ALLOWED_VIEWS[engine])
