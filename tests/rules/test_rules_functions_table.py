"""The function table: registration, arity, duplicates, and the plugin hook."""

from __future__ import annotations

import pluggy
import pytest

from mqferry._rules import (
    DuplicateFunctionError,
    FunctionTable,
    builtin_function_table,
    compile_sql,
)
from mqferry._rules.functions import blocking
from mqferry._rules.functions import plugin as builtin_plugin


def test_plugin_function_is_callable_from_sql() -> None:
    table = builtin_function_table()
    table.add("my_func", lambda x, y=1: x * 10 + y, plugin="mine")
    assert compile_sql('SELECT my_func(2) as a, my_func(2, 3) as b FROM "t"', table).apply(
        {"topic": "t"}
    ) == {"a": 21, "b": 23}
    spec = table.get("my_func")
    assert spec is not None
    assert (spec.min_args, spec.max_args, spec.plugin) == (1, 2, "mine")


def test_duplicate_names_both_plugins() -> None:
    table = builtin_function_table()
    with pytest.raises(DuplicateFunctionError) as info:
        table.add("upper", str.upper, plugin="shouty")
    assert "'functions'" in str(info.value)
    assert "'shouty'" in str(info.value)


def test_builtin_catalogue_has_the_documented_functions() -> None:
    table = builtin_function_table()
    for name in (
        "abs",
        "sprintf",
        "split",
        "tokens",
        "pad",
        "find",
        "join_to_string",
        "map_get",
        "map_put",
        "nth",
        "sublist",
        "contains",
        "json_decode",
        "base64_encode",
        "md5",
        "sha256",
        "bitand",
        "subbits",
        "format_date",
        "date_to_unix_ts",
        "gzip",
        "zip_compress",
        "uuid_v4",
        "now_timestamp",
    ):
        assert name in table
    assert len(table) >= 130


def test_builtins_register_through_the_hook() -> None:
    class Spec:
        @pluggy.HookspecMarker("mqferry")
        def mqferry_register_functions(self, register: object) -> None:
            """Spec."""

    pm = pluggy.PluginManager("mqferry")
    pm.add_hookspecs(Spec)
    pm.register(builtin_plugin, "functions")
    table = FunctionTable()

    class Register:
        def add(
            self,
            name: str,
            func: object,
            *,
            min_args: int | None = None,
            max_args: int | None = None,
        ) -> None:
            table.add(
                name,
                func,
                min_args=min_args,
                max_args=max_args,  # type: ignore[arg-type]
                plugin="functions",
            )

    pm.hook.mqferry_register_functions(register=Register())
    assert len(table) == len(builtin_function_table())


def test_jq_is_marked_blocking_and_so_is_a_rule_calling_it() -> None:
    table = builtin_function_table()
    jq, upper = table.get("jq"), table.get("upper")
    assert jq is not None and jq.blocking
    assert upper is not None and not upper.blocking
    assert compile_sql("SELECT jq('.a', payload) as a FROM \"t\"", table).blocking
    # anywhere in the statement: WHERE, FOREACH, DO, INCASE, nested calls
    assert compile_sql('SELECT 1 as x FROM "t" WHERE upper(jq(\'.a\', payload)) = 1',
                       table).blocking
    assert compile_sql("FOREACH jq('.xs[]', payload) as x DO x FROM \"t\"", table).blocking
    assert compile_sql("FOREACH payload.xs as x DO jq('.', x) as y FROM \"t\"", table).blocking
    assert not compile_sql('SELECT upper(payload.a) as a FROM "t"', table).blocking


def test_jq_is_blocking_in_the_plugin_managers_table_too() -> None:
    from mqferry._plugins import load_plugins

    table = load_plugins().function_table()
    spec = table.get("jq")
    assert spec is not None and spec.blocking


def test_a_plugin_function_can_be_marked_blocking() -> None:
    table = builtin_function_table()

    @blocking
    def slow_lookup(key: str) -> str:
        return key

    table.add("slow_lookup", slow_lookup, plugin="mine")
    assert compile_sql('SELECT slow_lookup(topic) as k FROM "t"', table).blocking
