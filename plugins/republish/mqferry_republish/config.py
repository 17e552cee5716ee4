"""Settings of a ``republish`` action (EMQX's rule action ``republish``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from mqferry import ActionConfigBase, Strict, check_template


class RepublishParameters(Strict):
    """Where and what to publish; every field is a template over the rule output.

    Missing values render as ``undefined`` in ``topic`` and ``payload`` (as EMQX); a ``qos`` or
    ``retain`` that does not render to a valid value falls back to 0 / false. An empty
    ``payload`` means ``${.}``.
    """

    topic: str
    payload: str = "${payload}"
    qos: str | int = "${qos}"
    retain: str | bool = "${retain}"
    mqtt_properties: dict[str, str] = Field(default_factory=dict)
    user_properties: str | None = None

    @field_validator("topic", "payload", "user_properties")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        return None if v is None else check_template(v)

    @field_validator("mqtt_properties")
    @classmethod
    def _props(cls, v: dict[str, str]) -> dict[str, str]:
        allowed = {"Payload-Format-Indicator", "Message-Expiry-Interval", "Content-Type",
                   "Response-Topic", "Correlation-Data"}
        for name in v:
            if name not in allowed:
                raise ValueError(f"unknown MQTT 5 property {name!r} "
                                 f"(allowed: {', '.join(sorted(allowed))})")
        return v


class RepublishActionConfig(ActionConfigBase):
    """A ``republish`` action."""

    parameters: RepublishParameters
