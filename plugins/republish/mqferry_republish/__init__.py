"""The ``republish`` action: rule outputs published to MQTT."""

from __future__ import annotations

from mqferry import Action, ActionRegister, ActionType, MqttPublisher, RuntimeContext, hookimpl
from mqferry_republish.config import RepublishActionConfig


def _action(name: str, config: RepublishActionConfig, connector: MqttPublisher | None,
            ctx: RuntimeContext) -> Action:
    from mqferry_republish.action import RepublishAction

    return RepublishAction(name=name, config=config, context=ctx, connector=connector)


@hookimpl
def mqferry_register_action_types(register: ActionRegister) -> None:
    """Register the ``republish`` action type."""
    register.add(ActionType("republish", RepublishActionConfig, _action,
                            connector_type="mqtt", connector_optional=True,
                            description="Publish rule outputs to an MQTT topic"))
