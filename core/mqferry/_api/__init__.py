"""The REST API of a running instance (EMQX v5 paths), its key store, server and CLI client."""

from __future__ import annotations

from mqferry._api.app import BASE, create_api
from mqferry._api.keys import KeyStore
from mqferry._api.server import ApiServer

__all__ = ["BASE", "ApiServer", "KeyStore", "create_api"]
