"""Plugin loading with fake distributions: entry points pointing at modules written per test."""

import inspect
import logging
import textwrap
from importlib.metadata import EntryPoint

import click
import pluggy
import pytest
from pydantic import BaseModel

from mqferry import ActionType, ConnectorType, SourceType, hookimpl
from mqferry import _hookspecs as hookspecs
from mqferry._errors import DuplicateTypeError, PluginError
from mqferry._plugins import EXPECTED_BUILTINS, load_plugins


class Cfg(BaseModel):
    pass


def _factory(*args):
    raise AssertionError("not built in these tests")


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, body: str) -> EntryPoint:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
        return EntryPoint(name=name, value=name, group="mqferry")

    return write


SINK = """
    from pydantic import BaseModel
    from mqferry import ActionType, hookimpl

    class Cfg(BaseModel):
        pass

    @hookimpl
    def mqferry_register_action_types(register):
        register.add(ActionType("{type}", Cfg, lambda *a: None))
"""


def _hook_names():
    """Every hook ``hookspecs`` declares, as pluggy reads the module."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    return sorted(name for name in dir(hookspecs)
                  if pm.parse_hookspec_opts(hookspecs, name) is not None)


def test_the_hook_list_comes_from_hookspecs():
    # a spec added to hookspecs is seen here without editing a list
    assert "mqferry_register_action_types" in _hook_names()
    assert "hookimpl" not in _hook_names() and "PROJECT" not in _hook_names()


@pytest.mark.parametrize("name", _hook_names())
def test_every_hook_is_documented(name):
    doc = inspect.getdoc(getattr(hookspecs, name))
    assert doc, name
    assert "Fires" in doc and "Args:" in doc and "Returns:" in doc, name


@pytest.mark.parametrize("name", _hook_names())
def test_every_hook_has_its_own_test(name):
    assert callable(globals().get(f"test_hook_{name}")), f"no test_hook_{name} in {__name__}"


def test_hook_mqferry_register_connector_types():
    class P:
        @hookimpl
        def mqferry_register_connector_types(self, register):
            register.add(ConnectorType("fake", Cfg, _factory))

    regs = load_plugins(entry_points_=[], extra=[("p", P())], warn_missing_builtins=False)
    assert regs.registries().connectors.get("fake").config_model is Cfg


def test_hook_mqferry_register_action_types():
    class P:
        @hookimpl
        def mqferry_register_action_types(self, register):
            register.add(ActionType("fake", Cfg, _factory, connector_type="x"))

    regs = load_plugins(entry_points_=[], extra=[("p", P())], warn_missing_builtins=False)
    assert regs.registries().actions.get("fake").connector_type == "x"


def test_hook_mqferry_register_source_types():
    class P:
        @hookimpl
        def mqferry_register_source_types(self, register):
            register.add(SourceType("fake", Cfg, _factory))

    regs = load_plugins(entry_points_=[], extra=[("p", P())], warn_missing_builtins=False)
    assert regs.registries().sources.names() == ["fake"]


def test_hook_mqferry_register_functions():
    class P:
        @hookimpl
        def mqferry_register_functions(self, register):
            register.add("triple", lambda x: x * 3)

    from mqferry._rules import evaluate_sql

    ps = load_plugins(entry_points_=[], extra=[("p", P())], warn_missing_builtins=False)
    out = evaluate_sql('SELECT triple(payload.n) AS t FROM "t/#"',
                       {"topic": "t/1", "payload": '{"n": 2}'}, ps.function_table())
    assert out == {"t": 6}


def test_hook_mqferry_register_commands():
    class P:
        @hookimpl
        def mqferry_register_commands(self, cli):
            cli.add_command(click.Command("hello", callback=lambda: click.echo("hi")))

    from click.testing import CliRunner

    from mqferry._cli import build_cli

    ps = load_plugins(entry_points_=[], extra=[("p", P())], warn_missing_builtins=False)
    result = CliRunner().invoke(build_cli(ps), ["hello"], obj={"plugins": ps})
    assert result.output == "hi\n"


def test_hook_mqferry_cluster_transport():
    from mqferry import ClusterConfig, ConfigError
    from mqferry.testing import ClusterBus

    bus = ClusterBus()
    seen = []

    class P:
        @hookimpl
        def mqferry_cluster_transport(self, config, node):
            seen.append((config.name, node, config.transport_options()))
            return bus.transport(node)

    cfg = ClusterConfig(name="plant-7", bootstrap_hosts="k:9092")
    ps = load_plugins(entry_points_=[], extra=[("p", P())], warn_missing_builtins=False)
    transport = ps.cluster_transport(cfg, "n1@h")
    assert transport.node == "n1@h" and transport.bus is bus
    assert seen == [("plant-7", "n1@h", {"bootstrap_hosts": "k:9092"})]
    none = load_plugins(entry_points_=[], warn_missing_builtins=False)
    with pytest.raises(ConfigError, match="no installed plugin provides a cluster transport"):
        none.cluster_transport(cfg, "n1@h")


def test_a_plugin_that_fails_to_import_is_named_and_the_rest_load(plugin_dir, caplog):
    good = plugin_dir("good_plugin", SINK.format(type="good"))
    bad = plugin_dir("bad_plugin", "raise RuntimeError('boom at import')\n")
    with caplog.at_level(logging.ERROR):
        ps = load_plugins(entry_points_=[bad, good], warn_missing_builtins=False)
    assert ps.failed == {"bad_plugin": "RuntimeError: boom at import"}
    assert "bad_plugin" in caplog.text and "boom at import" in caplog.text
    assert ps.registries().actions.names() == ["good"]


def test_disable_plugins_by_env(plugin_dir):
    a = plugin_dir("plug_a", SINK.format(type="a"))
    b = plugin_dir("plug_b", SINK.format(type="b"))
    c = plugin_dir("plug_c", SINK.format(type="c"))
    ps = load_plugins(entry_points_=[a, b, c], env={"MQFERRY_DISABLE_PLUGINS": "plug_a, plug_c"},
                      warn_missing_builtins=False)
    assert ps.registries().actions.names() == ["b"]
    assert sorted(ps.disabled) == ["plug_a", "plug_c"]


def test_duplicate_type_names_are_refused_naming_both(plugin_dir):
    one = plugin_dir("first_sink", SINK.format(type="same"))
    two = plugin_dir("second_sink", SINK.format(type="same"))
    ps = load_plugins(entry_points_=[one, two], warn_missing_builtins=False)
    with pytest.raises(DuplicateTypeError) as info:
        ps.registries()
    assert "'first_sink'" in str(info.value) and "'second_sink'" in str(info.value)


def test_a_missing_builtin_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING):
        load_plugins(entry_points_=[])
    for name in EXPECTED_BUILTINS:
        assert f"built-in plugin {name!r} is missing" in caplog.text


def test_builtins_are_loaded_through_their_entry_points():
    ps = load_plugins()
    names = {i.name for i in ps.infos()}
    assert set(EXPECTED_BUILTINS) <= names
    regs = ps.registries()
    assert {"kafka_producer", "kafka_consumer", "mqtt"} <= set(regs.connectors.names())
    assert {"kafka_producer", "republish"} <= set(regs.actions.names())
    assert regs.sources.names() == ["kafka_consumer"] or "kafka_consumer" in regs.sources
    info = {i.name: i for i in ps.infos()}["kafka_producer"]
    assert info.distribution == "mqferry"
    assert "mqferry_register_action_types" in info.hooks


def test_a_registration_of_the_wrong_kind_is_a_plugin_error_naming_the_plugin(plugin_dir):
    wrong = plugin_dir("wrong_kind", """
        from pydantic import BaseModel
        from mqferry import SourceType, hookimpl

        class Cfg(BaseModel):
            pass

        @hookimpl
        def mqferry_register_action_types(register):
            register.add(SourceType("oops", Cfg, lambda *a: None))
    """)
    ps = load_plugins(entry_points_=[wrong], warn_missing_builtins=False)
    with pytest.raises(PluginError, match=r"plugin 'wrong_kind' registered SourceType\(.*\) with "
                                          r"mqferry_register_action_types; expected a ActionType"):
        ps.registries()


def test_a_registration_hook_that_raises_is_a_plugin_error_naming_the_plugin(plugin_dir):
    broken = plugin_dir("broken_reg", """
        from mqferry import hookimpl

        @hookimpl
        def mqferry_register_source_types(register):
            raise KeyError("missing setting")
    """)
    ps = load_plugins(entry_points_=[broken], warn_missing_builtins=False)
    with pytest.raises(PluginError, match="plugin 'broken_reg': mqferry_register_source_types "
                                          "failed: KeyError: 'missing setting'") as info:
        ps.registries()
    assert info.value.component == "broken_reg"


def test_registration_runs_through_pluggys_hook_caller(plugin_dir):
    # pluggy's tracing sees every registration call, one per plugin with its own register
    a = plugin_dir("traced_a", SINK.format(type="ta"))
    b = plugin_dir("traced_b", SINK.format(type="tb"))
    ps = load_plugins(entry_points_=[a, b], warn_missing_builtins=False)
    seen: list[str] = []
    undo = ps.manager.add_hookcall_monitoring(
        lambda name, impls, kwargs: seen.append(f"{name}:{[i.plugin_name for i in impls]}"),
        lambda outcome, name, impls, kwargs: None)
    try:
        regs = ps.registries()
    finally:
        undo()
    assert "mqferry_register_action_types:['traced_a']" in seen
    assert "mqferry_register_action_types:['traced_b']" in seen
    assert regs.actions.plugin_of("ta") == "traced_a" and regs.actions.plugin_of("tb") == "traced_b"
