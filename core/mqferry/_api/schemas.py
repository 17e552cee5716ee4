"""Request bodies for the OpenAPI document, built from the registered plugin types.

``POST /connectors`` (and actions, sources) takes ``{type, name, ...settings}``: one model per
registered type, the settings model plus ``type`` and ``name``, joined as a union on ``type``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, create_model

from mqferry._config.models import Description, InlineAction, Label, Name, Sql, Strict
from mqferry._registry import TypeRegistry

__all__ = ["RuleBody", "RuleTestBody", "RuleUpdate", "StoredRuleTest", "post_model"]


def post_model(kind: str, registry: TypeRegistry[Any]) -> Any:
    """The body of ``POST /<kind>``: a union of every type's settings plus ``type`` and ``name``.

    With no type registered the body is any object (and every request is refused by type).
    """
    models: list[type[BaseModel]] = []
    for typ in registry:
        fields: dict[str, Any] = {"type": (Literal[typ.name], ...), "name": (Name, ...)}
        model = create_model(f"{kind}_{typ.name}_post", __base__=typ.config_model, **fields)
        models.append(model)
    if not models:
        return dict[str, Any]
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007


class RuleUpdate(Strict):
    """``PUT /rules/:id``: every field optional; the ones given replace the stored ones."""

    sql: Sql | None = None
    actions: list[str | InlineAction] | None = None
    enable: bool | None = None
    description: Description | None = None
    name: Label | None = None


class RuleBody(Strict):
    """``POST /rules``."""

    id: Name | None = None
    sql: Sql
    actions: list[str | InlineAction] = Field(default_factory=list)
    enable: bool = True
    description: Description = ""
    name: Label = ""


class RuleTestBody(Strict):
    """``POST /rule_test``: SQL and the event to run it on (EMQX's tester context)."""

    sql: Sql
    context: dict[str, Any] = Field(default_factory=dict)


class StoredRuleTest(Strict):
    """``POST /rules/:id/test``: run a stored rule and render its actions' outputs."""

    context: dict[str, Any] = Field(default_factory=dict)
    #: Only rendering is supported: nothing is ever sent from the tester.
    stop_action_after_template_rendering: Literal[True] = True
