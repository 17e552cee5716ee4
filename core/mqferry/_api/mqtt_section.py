"""``GET`` and ``PUT /mqtt``: the top-level ``mqtt`` section, read and changed like the rest.

A change is validated with the whole configuration, written back to the file and applied through
the controller, as every change is. The MQTT session is not restarted underneath the data path:
the reconfiguration reports ``mqtt`` as needing a restart, and ``restart_needed`` stays true
until the running session uses the saved settings.
"""

# No ``from __future__ import annotations``: FastAPI reads the body's annotation as an object.

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from mqferry._api.errors import bad_request
from mqferry._api.redact import (
    redact,
    refuse_files,
    refuse_rebinding,
    refuse_references,
    restore,
)
from mqferry._config.models import MqttConfig
from mqferry._runtime.reconfig import Controller

__all__ = ["mqtt_router"]


def _minimal(new: dict[str, Any], stored: dict[str, Any], current: dict[str, Any],
             defaults: dict[str, Any]) -> dict[str, Any]:
    """What to write for ``new``: the keys the file had or that differ from the default.

    The console sends the whole section back, defaults included; only what the operator set
    belongs in the file. A key whose value did not change keeps the file's spelling (``2h``
    stays ``2h``, not ``7200.0``).

    Args:
        new: the section as sent, secrets restored.
        stored: the section as the file has it.
        current: the saved section as the API shows it (defaults filled in, normalised).
        defaults: the section's defaults, normalised.
    """
    out: dict[str, Any] = {}
    for key, value in new.items():
        old, default = stored.get(key), defaults.get(key)
        if isinstance(value, dict) and isinstance(default, dict):
            nested = _minimal(value, old if isinstance(old, dict) else {},
                              current.get(key) or {}, default)
            if nested or key in stored:
                out[key] = nested
        elif key in stored:
            out[key] = old if value == current.get(key) else value
        elif value != default:
            out[key] = value
    return out


def mqtt_view(ctrl: Controller) -> dict[str, Any]:
    """The saved section with every default filled in and secrets redacted, and whether the
    running session still uses other settings."""
    saved = ctrl.app.config.raw.mqtt
    return {"config": redact(saved.model_dump(mode="json")),
            "restart_needed": ctrl.app.mqtt.config != saved}


def mqtt_router(ctrl: Controller) -> APIRouter:
    """The routes of the ``mqtt`` section."""
    router = APIRouter(tags=["mqtt"])

    @router.get("/mqtt", summary="The MQTT section: the broker mqferry is attached to")
    async def get_mqtt() -> dict[str, Any]:
        return mqtt_view(ctrl)

    @router.put("/mqtt", summary="Replace the MQTT section (applied at the next restart)",
                responses={400: {"description": "invalid; nothing was saved"}})
    async def put_mqtt(request: Request,
                       body: Annotated[MqttConfig, Body()]) -> dict[str, Any]:
        raw = await request.json()
        if not isinstance(raw, dict):
            raise bad_request("the body must be a JSON object")
        section = ctrl.data.get("mqtt")
        stored: dict[str, Any] = section if isinstance(section, dict) else {}
        defaults = MqttConfig().model_dump(mode="json")
        current = ctrl.app.config.raw.mqtt.model_dump(mode="json")
        # As for components: references are the operator's file's alone, and a kept password
        # never follows a new server or user (compared with the saved section, defaults filled
        # in, so a default the console sends back is no change).
        refuse_references(MqttConfig, raw, "mqtt")
        refuse_rebinding(raw, current)
        refuse_files(raw, current, ctrl.app.config.raw.api.ssl_file_dirs, "mqtt")
        new = _minimal(restore(raw, stored), stored, current, defaults)

        def put(data: dict[str, Any]) -> None:
            if new:
                data["mqtt"] = new
            else:
                data.pop("mqtt", None)

        await ctrl.change(put)
        return mqtt_view(ctrl)

    return router
