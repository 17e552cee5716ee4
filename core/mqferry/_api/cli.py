"""CLI commands that talk to a running instance through its API, and ``mqferry api-key create``.

``mqferry rules|actions|sources|connectors list|show|metrics`` print tables (``--json`` prints the
API's JSON); ``create``, ``update``, ``enable``, ``disable`` and ``delete`` change them
(:mod:`mqferry._api.cli_edit`). Where the instance is and the key: :mod:`mqferry._api.client`
(``-c FILE`` uses the config's ``api.listen``; ``MQFERRY_API_URL``, ``MQFERRY_API_KEY``,
``MQFERRY_API_SECRET``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from mqferry._api.cli_edit import add_edit_commands
from mqferry._api.client import ApiClient, with_api
from mqferry._api.roles import ADMINISTRATOR, ROLES

__all__ = ["register_commands"]

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_cell(v) if not isinstance(v, dict) else json.dumps(v) for v in value)
    return str(value)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def _show(value: dict[str, Any]) -> None:
    width = max((len(k) for k in value), default=0)
    for k, v in value.items():
        text = json.dumps(v) if isinstance(v, dict | list) and v and not all(
            isinstance(i, str) for i in v) else _cell(v)
        click.echo(f"{k.ljust(width)}  {text}")


def _metrics_table(metrics: dict[str, Any]) -> str:
    return _table(sorted(metrics.items()), ["METRIC", "VALUE"])


def _kind_group(kind: str, group: click.Group | None = None) -> click.Group:
    one = kind.removesuffix("s")
    if group is None:
        group = click.Group(kind, help=f"Inspect and change the {kind} of a running instance.")

    @group.command("list")
    @with_api
    @_JSON
    def list_cmd(api: ApiClient, as_json: bool) -> None:
        """List them, with their status."""
        if kind == "rules":
            items = api.call("GET", "/rules", params={"limit": 10000})["data"]
            if as_json:
                _echo_json(items)
                return
            click.echo(_table([[r["id"], r["enable"], r["from"], r["actions"], r["description"]]
                               for r in items],
                              ["ID", "ENABLE", "FROM", "ACTIONS", "DESCRIPTION"]))
            return
        items = api.call("GET", f"/{kind}")
        if as_json:
            _echo_json(items)
            return
        extra = "actions" if kind == "connectors" else "connector"
        click.echo(_table([[f"{c['type']}:{c['name']}", c.get("enable"), c.get("status"),
                            c.get(extra), c.get("status_reason")] for c in items],
                          ["ID", "ENABLE", "STATUS", extra.upper(), "REASON"]))

    @group.command("show")
    @click.argument("id")
    @with_api
    @_JSON
    def show_cmd(id: str, api: ApiClient, as_json: bool) -> None:
        """Show one, by id (rules: the rule id; others: <type>:<name>)."""
        item = api.call("GET", f"/{kind}/{id}")
        if as_json:
            _echo_json(item)
        else:
            _show(item)

    add_edit_commands(group, kind)
    if kind == "connectors":
        return group

    @group.command("metrics", help=f"Show the counters and rates of one {one}.")
    @click.argument("id")
    @with_api
    @_JSON
    def metrics_cmd(id: str, api: ApiClient, as_json: bool) -> None:
        body = api.call("GET", f"/{kind}/{id}/metrics")
        if as_json:
            _echo_json(body)
        else:
            click.echo(_metrics_table(body["metrics"]))

    return group


def _connector_metrics(group: click.Group) -> None:
    @group.command("metrics")
    @click.argument("id")
    @with_api
    @_JSON
    def metrics_cmd(id: str, api: ApiClient, as_json: bool) -> None:
        """Show the summed counters of the actions and sources bound to a connector."""
        conn = api.call("GET", f"/connectors/{id}")
        total: dict[str, float] = {}
        users = []
        for kind in ("actions", "sources"):
            for item in api.call("GET", f"/{kind}"):
                if item.get("connector") == conn["name"] and item["type"] == conn["type"]:
                    cid = f"{item['type']}:{item['name']}"
                    users.append(cid)
                    for k, v in api.call("GET", f"/{kind}/{cid}/metrics")["metrics"].items():
                        total[k] = total.get(k, 0) + v
        if as_json:
            _echo_json({"id": id, "components": users, "metrics": total})
        else:
            click.echo(f"{id}: {', '.join(users) or 'no actions or sources'}")
            click.echo(_metrics_table(total))


@click.group("api-key")
def api_key() -> None:
    """Manage the keys of the REST API."""


@api_key.command("create")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The instance's config file (its api.key_store and data_dir).")
@click.option("--key-store", type=click.Path(dir_okay=False, path_type=Path),
              help="The key store file, instead of the one named in the config.")
@click.option("--name", required=True, help="A name for the key.")
@click.option("--desc", default="", help="A description.")
@click.option("--role", type=click.Choice(ROLES), default=ADMINISTRATOR, show_default=True,
              help="viewer: read-only (dashboards, monitoring); administrator: everything.")
def api_key_create(config_path: Path | None, key_store: Path | None, name: str,
                   desc: str, role: str) -> None:
    """Create an API key; its secret is printed once and only its hash is stored."""
    from mqferry._api.keys import KeyStore, api_key_store

    cluster = None
    if key_store is None:
        if config_path is None:
            raise click.UsageError("give --config or --key-store")
        from mqferry._config.models import ApiConfig
        from mqferry._config.yamlfile import read_yaml
        from mqferry._errors import ConfigError

        try:
            data = read_yaml(config_path, env=("api", "data_dir"))
            api = ApiConfig.model_validate(data.get("api") or {})
        except (ConfigError, ValueError) as exc:
            raise click.ClickException(f"{config_path}: {exc}") from None
        key_store = api_key_store(api, str(data.get("data_dir") or "data"), config_path)
        section = data.get("cluster")
        cluster = section.get("name") if isinstance(section, dict) else None
    try:
        key, secret = KeyStore(key_store).create(name, desc, role)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {key_store}: {exc.strerror}") from None
    click.echo(f"api_key:    {key.api_key}\napi_secret: {secret}\nrole:       {key.role}")
    click.echo(f"stored in {key_store}; the secret is not stored and cannot be shown again",
               err=True)
    if cluster is not None:
        click.echo(f"this node is in cluster {cluster!r}: while it runs, it shares the key with "
                   "every node of the cluster within seconds (a stopped node shares it when it "
                   "starts)", err=True)


@click.command("reload")
@with_api
@_JSON
def config_reload(api: ApiClient, as_json: bool) -> None:
    """Make a running instance read its config file again and apply what changed."""
    plan = api.call("POST", "/config/reload")
    if as_json:
        _echo_json(plan)
        return
    lines = []
    for verb in ("start", "stop"):
        for kind, ids in plan[verb].items():
            if ids:
                lines.append(f"{verb} {kind}: {', '.join(ids)}")
    for key in ("rules_changed", "subscribed", "unsubscribed", "restart_needed"):
        if plan[key]:
            lines.append(f"{key.replace('_', ' ')}: {', '.join(plan[key])}")
    click.echo("\n".join(lines) or "no changes")


def register_commands(cli: click.Group, *, config: click.Group,
                      connectors: click.Group) -> None:
    """Add the API client commands to the ``mqferry`` group (and to its existing subgroups)."""
    for kind in ("rules", "actions", "sources"):
        cli.add_command(_kind_group(kind))
    _kind_group("connectors", connectors)
    _connector_metrics(connectors)
    cli.add_command(api_key)
    config.add_command(config_reload)
