"""The API fixtures (an App with the fake plugin, a controller and a key) serve the console."""

from tests.api.conftest import config_file, controller, keys, plugins

__all__ = ["config_file", "controller", "keys", "plugins"]
