"""The HTTP client of the ``mqferry`` commands that talk to a running instance.

Where the instance is, in this order: ``--url``; the ``api`` section of the config file given with
``-c/--config`` (``api.listen``, ``https`` when ``api.ssl.enable``); ``MQFERRY_API_URL``;
``http://127.0.0.1:18083``. Over https the client trusts the system's CAs, ``--cacert``, and, with
``-c``, the certificate the instance serves (``api.ssl.certfile``), so a self-signed certificate
works without copying it around. The key and secret come from ``--api-key``/``--api-secret`` or
``MQFERRY_API_KEY``/``MQFERRY_API_SECRET``.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
from click.core import ParameterSource

__all__ = ["DEFAULT_URL", "ApiClient", "Target", "target_from_config", "with_api"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_URL = "http://127.0.0.1:18083"
_ANY = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - a listen address


#: How long the CLI waits for the answer to a change (POST, PUT, DELETE). The instance bounds a
#: change itself: each component's stop by its flush bound plus 10 s, each start by 30 s; a
#: shorter wait reported a change as failed that was then applied (a sink flushing to a Kafka
#: that hangs takes 35 s to stop).
CHANGE_TIMEOUT = 300.0


class Target:
    """Where an instance's API is and which certificates to trust.

    Args:
        url: ``http(s)://host:port``.
        trust: files of certificates to trust besides the system's (CA or the server's own).
    """

    def __init__(self, url: str, trust: tuple[str, ...] = ()) -> None:
        self.url = url.rstrip("/")
        self.trust = trust

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies the server with."""
        if not self.trust:
            return True
        ctx = ssl.create_default_context()
        # the server's own certificate, not only a CA, may be the trust anchor
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        for path in self.trust:
            try:
                ctx.load_verify_locations(cafile=path)
            except (OSError, ssl.SSLError) as exc:
                raise click.ClickException(f"cannot load the certificate {path}: "
                                           f"{getattr(exc, 'strerror', None) or exc}") from None
        return ctx


def target_from_config(path: Path) -> Target:
    """The API address of the instance configured by ``path`` (its ``api`` section)."""
    from mqferry._config.models import ApiConfig
    from mqferry._config.yamlfile import read_yaml
    from mqferry._errors import ConfigError

    try:
        data = read_yaml(path, env=("api",))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        api = ApiConfig.model_validate(data.get("api") or {})
    except ValueError as exc:
        raise click.ClickException(f"{path}: api: {exc}") from None
    if not api.enable:
        raise click.ClickException(f"{path}: the API is disabled (api.enable: false)")
    host = _ANY.get(api.host, api.host)
    host = f"[{host}]" if ":" in host else host
    if api.ssl.enable:
        return Target(f"https://{host}:{api.port}", (str(api.ssl.certfile),))
    return Target(f"http://{host}:{api.port}")


class ApiClient:
    """Calls the ``/api/v5`` paths of one instance; errors become one-line ClickExceptions.

    Args:
        target: where the instance is.
        key: the API key.
        secret: its secret.
    """

    def __init__(self, target: Target, key: str | None, secret: str | None) -> None:
        self.target = target
        self.auth = (key, secret) if key and secret else None

    @property
    def url(self) -> str:
        """The instance's address."""
        return self.target.url

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded response of ``method path`` (JSON, text, or None for no content)."""
        try:
            timeout = httpx.Timeout(30.0, read=30.0 if method == "GET" else CHANGE_TIMEOUT)
            with httpx.Client(base_url=f"{self.url}/api/v5", auth=self.auth, timeout=timeout,
                              verify=self.target.verify()) as client:
                resp = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach mqferry at {self.url}: {exc}") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
                message = f"{body.get('code', resp.status_code)}: {body.get('message', '')}"
            except ValueError:
                message = f"HTTP {resp.status_code}"
            if resp.status_code == 401:
                message += " (set MQFERRY_API_KEY and MQFERRY_API_SECRET)"
            raise click.ClickException(message)
        if resp.status_code == 204 or not resp.content:
            return None
        if resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return resp.text


def with_api(func: F) -> F:
    """Give a command the connection options and call it with ``api=ApiClient(...)``."""

    @functools.wraps(func)
    def wrapper(*args: Any, url: str | None, config_path: Path | None, api_key: str | None,
                api_secret: str | None, cacert: str | None, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        if url is not None and ctx.get_parameter_source("url") is ParameterSource.COMMANDLINE:
            target = Target(url)
        elif config_path is not None:
            target = target_from_config(config_path)
        else:
            target = Target(url or os.environ.get("MQFERRY_API_URL") or DEFAULT_URL)
        if cacert:
            target.trust += (cacert,)
        return func(*args, api=ApiClient(target, api_key, api_secret), **kwargs)

    options = [
        click.option("-c", "--config", "config_path",
                     type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="The instance's config file: its api.listen and api.ssl."),
        click.option("--url", envvar="MQFERRY_API_URL", default=None,
                     help=f"The instance's API address (env MQFERRY_API_URL; "
                          f"default {DEFAULT_URL})."),
        click.option("--api-key", envvar="MQFERRY_API_KEY", default=None,
                     help="API key (env MQFERRY_API_KEY)."),
        click.option("--api-secret", envvar="MQFERRY_API_SECRET", default=None,
                     help="API secret (env MQFERRY_API_SECRET)."),
        click.option("--cacert", type=click.Path(dir_okay=False), default=None,
                     help="A CA file to verify an https API with."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]
