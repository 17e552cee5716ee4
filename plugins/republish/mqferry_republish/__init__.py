"""The ``republish`` action: rule outputs published to MQTT."""

from __future__ import annotations

from typing import Any

from mqferry import ActionType, hookimpl
from mqferry_republish.config import RepublishActionConfig


def _action(name: str, config: Any, connector: Any, ctx: Any) -> Any:
    from mqferry_republish.action import RepublishAction

    return RepublishAction(name=name, config=config, context=ctx, connector=connector)


@hookimpl
def mqferry_register_action_types(register: Any) -> None:
    """Register the ``republish`` action type."""
    register.add(ActionType("republish", RepublishActionConfig, _action,
                            connector_type="mqtt", connector_optional=True,
                            description="Publish rule outputs to an MQTT topic"))
