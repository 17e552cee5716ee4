"""CLI commands that change a running instance through its API, as the API and console can.

Rules::

    mqferry rules create --id r1 --sql 'SELECT * FROM "t/#"' --action kafka_producer:k
    mqferry rules update r1 --sql-file r1.sql
    mqferry rules enable|disable|delete r1

Connectors, actions and sources take their settings from a YAML or JSON file (``-`` reads
standard input), shaped as under ``actions.<type>.<name>`` in the config file::

    mqferry actions create --type kafka_producer --name k --file settings.yaml
    mqferry actions update kafka_producer:k --file settings.yaml
    mqferry actions enable|disable|delete kafka_producer:k

Every change is validated, applied and written back to the config file by the instance; what it
refuses is printed as one line naming what is wrong.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from mqferry._api.client import ApiClient, with_api

__all__ = ["add_edit_commands", "read_settings"]

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")


def read_settings(path: str) -> dict[str, Any]:
    """The mapping in a YAML or JSON file (``-``: standard input)."""
    name = "standard input" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise click.ClickException(f"{name}: {where}not valid YAML or JSON "
                                   f"({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, dict):
        raise click.ClickException(f"{name}: expected a mapping of settings, "
                                   f"not {type(data).__name__}")
    return data


def _action_ref(text: str) -> str | dict[str, Any]:
    """``<type>:<name>``, or an inline action as a JSON object (``{"function": ...}``)."""
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise click.BadParameter(f"not a JSON object: {exc}") from None
        if not isinstance(value, dict):
            raise click.BadParameter("an inline action is a JSON object")
        return value
    if ":" not in text:
        raise click.BadParameter(f"{text!r}: expected <type>:<name> (kafka_producer:my-sink) "
                                 f"or an inline action as JSON")
    return text


def _sql(sql: str | None, sql_file: str | None) -> str | None:
    if sql is not None and sql_file is not None:
        raise click.UsageError("give --sql or --sql-file, not both")
    if sql_file is not None:
        try:
            return sys.stdin.read() if sql_file == "-" else Path(sql_file).read_text()
        except OSError as exc:
            raise click.ClickException(f"cannot read {sql_file}: {exc.strerror}") from None
    return sql


def _done(item: Any, as_json: bool, line: str) -> None:
    if as_json:
        click.echo(json.dumps(item, indent=2))
    else:
        click.echo(line)


def _rule_options(func: Any) -> Any:
    options = [
        click.option("--sql", default=None, help="The rule's SQL."),
        click.option("--sql-file", default=None, help="Read the SQL from a file (- for stdin)."),
        click.option("--action", "actions", multiple=True,
                     help="An action: <type>:<name>, or an inline action as JSON; repeat for "
                          "several."),
        click.option("--description", default=None, help="A description."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _add_rule_commands(group: click.Group) -> None:
    @group.command("create")
    @click.option("--id", "rid", default=None, help="The rule id (default: a random one).")
    @_rule_options
    @click.option("--disable", is_flag=True, help="Create it disabled.")
    @with_api
    @_JSON
    def create(rid: str | None, sql: str | None, sql_file: str | None,  # noqa: PLR0917
               actions: tuple[str, ...], description: str | None, disable: bool,
               api: ApiClient, as_json: bool) -> None:
        """Create a rule (the instance checks its SQL and actions)."""
        text = _sql(sql, sql_file)
        if text is None:
            raise click.UsageError("a rule needs --sql or --sql-file")
        body: dict[str, Any] = {"sql": text, "actions": [_action_ref(a) for a in actions],
                                "enable": not disable}
        if rid is not None:
            body["id"] = rid
        if description is not None:
            body["description"] = description
        item = api.call("POST", "/rules", json=body)
        _done(item, as_json, f"rule {item['id']} created")

    @group.command("update")
    @click.argument("id")
    @_rule_options
    @click.option("--no-actions", is_flag=True, help="Remove every action.")
    @with_api
    @_JSON
    def update(id: str, sql: str | None, sql_file: str | None,  # noqa: PLR0917
               actions: tuple[str, ...], description: str | None, no_actions: bool,
               api: ApiClient, as_json: bool) -> None:
        """Change a rule: the fields given replace the current ones (--action replaces the list)."""
        body: dict[str, Any] = {}
        text = _sql(sql, sql_file)
        if text is not None:
            body["sql"] = text
        if actions and no_actions:
            raise click.UsageError("give --action or --no-actions, not both")
        if actions or no_actions:
            body["actions"] = [_action_ref(a) for a in actions]
        if description is not None:
            body["description"] = description
        if not body:
            raise click.UsageError("nothing to change: give --sql, --sql-file, --action, "
                                   "--no-actions or --description")
        item = api.call("PUT", f"/rules/{id}", json=body)
        _done(item, as_json, f"rule {id} updated")

    for verb, enable in (("enable", True), ("disable", False)):
        _rule_switch(group, verb, enable)

    @group.command("delete")
    @click.argument("id")
    @with_api
    def delete(id: str, api: ApiClient) -> None:
        """Delete a rule."""
        api.call("DELETE", f"/rules/{id}")
        click.echo(f"rule {id} deleted")


def _rule_switch(group: click.Group, verb: str, enable: bool) -> None:
    @group.command(verb, help=f"{verb.capitalize()} a rule.")
    @click.argument("id")
    @with_api
    def switch(id: str, api: ApiClient) -> None:
        api.call("PUT", f"/rules/{id}", json={"enable": enable})
        click.echo(f"rule {id} {verb}d")


def _add_component_commands(group: click.Group, kind: str) -> None:
    one = kind.removesuffix("s")
    a_one = f"an {one}" if one[0] in "aeiou" else f"a {one}"

    @group.command("create", help=f"Create {a_one} from a settings file.")
    @click.option("--type", "type_name", required=True, help="Its type (kafka_producer, ...).")
    @click.option("--name", required=True, help="Its name.")
    @click.option("--file", "path", required=True,
                  help=f"YAML or JSON settings, as under {kind}.<type>.<name> in the config "
                       f"(- for stdin).")
    @with_api
    @_JSON
    def create(type_name: str, name: str, path: str, api: ApiClient, as_json: bool) -> None:
        settings = read_settings(path)
        for key in ("type", "name"):
            if key in settings:
                raise click.ClickException(f"{path}: {key!r} is given by --{key}, not in the "
                                           f"settings")
        item = api.call("POST", f"/{kind}", json={"type": type_name, "name": name, **settings})
        _done(item, as_json, f"{one} {type_name}:{name} created")

    @group.command("update", help=f"Replace {a_one}'s settings with those of a file "
                                  f"(a secret shown as ****** keeps its value).")
    @click.argument("id")
    @click.option("--file", "path", required=True,
                  help="YAML or JSON settings (- for stdin).")
    @with_api
    @_JSON
    def update(id: str, path: str, api: ApiClient, as_json: bool) -> None:
        item = api.call("PUT", f"/{kind}/{id}", json=read_settings(path))
        _done(item, as_json, f"{one} {id} updated")

    for verb, enable in (("enable", True), ("disable", False)):
        _component_switch(group, kind, verb, enable)

    @group.command("delete", help=f"Delete {a_one}.")
    @click.argument("id")
    @click.option("--remove-from-rules", is_flag=True, hidden=kind != "actions",
                  help="Also remove the action from the rules that use it.")
    @with_api
    def delete(id: str, remove_from_rules: bool, api: ApiClient) -> None:
        params = {"also_delete_dep_actions": "true"} if remove_from_rules else {}
        api.call("DELETE", f"/{kind}/{id}", params=params)
        click.echo(f"{one} {id} deleted")


def _component_switch(group: click.Group, kind: str, verb: str, enable: bool) -> None:
    one = kind.removesuffix("s")

    @group.command(verb, help=f"{verb.capitalize()} the {one}.")
    @click.argument("id")
    @with_api
    def switch(id: str, api: ApiClient) -> None:
        api.call("PUT", f"/{kind}/{id}/enable/{str(enable).lower()}")
        click.echo(f"{one} {id} {verb}d")


def add_edit_commands(group: click.Group, kind: str) -> None:
    """Add ``create``, ``update``, ``enable``, ``disable`` and ``delete`` to a kind's group."""
    if kind == "rules":
        _add_rule_commands(group)
    else:
        _add_component_commands(group, kind)
