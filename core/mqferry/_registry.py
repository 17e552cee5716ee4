"""Type registries filled by the registration hooks.

Each registry refuses a second registration of the same name and names both plugins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

from mqferry._errors import DuplicateTypeError, PluginError

if TYPE_CHECKING:
    from mqferry._types import Action, Connector, HealthStatus, RuntimeContext, Source

Kind = Literal["connector", "action", "source"]


class ConnectorFactory(Protocol):
    """Builds a connector: ``(name, config, context) -> Connector``.

    ``config`` is an instance of the type's ``config_model``, already validated; annotate it with
    that model in the factory.
    """

    def __call__(self, name: str, config: Any, context: RuntimeContext, /) -> Connector:
        """The connector called ``name`` (not started yet)."""
        ...


class ActionFactory(Protocol):
    """Builds an action: ``(name, config, connector, context) -> Action``.

    ``config`` is an instance of the type's ``config_model``; ``connector`` is the connector the
    action's config names, as built by its type's factory, or ``None`` for a type without one.
    """

    def __call__(self, name: str, config: Any, connector: Any, context: RuntimeContext,
                 /) -> Action:
        """The action called ``name`` (not started yet)."""
        ...


class SourceFactory(Protocol):
    """Builds a source: ``(name, config, connector, context) -> Source`` (see ActionFactory)."""

    def __call__(self, name: str, config: Any, connector: Any, context: RuntimeContext,
                 /) -> Source:
        """The source called ``name`` (not started yet)."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectorType:
    """A connector type: its name, config model and factory.

    Attributes:
        name: the type name used in config (``kafka_producer``).
        config_model: the pydantic model of one connector's settings.
        factory: builds the connector from its name, validated config and the runtime context.
        description: one line for ``mqferry plugins``.
        probe: tests a validated config without starting anything ("test connection").
    """

    name: str
    config_model: type[BaseModel]
    factory: ConnectorFactory
    description: str = ""
    probe: Callable[[Any], Awaitable[HealthStatus]] | None = None


@dataclass(frozen=True, slots=True)
class ActionType:
    """An action type.

    Attributes:
        name: the type name used in config and in rule action ids (``kafka_producer:my_sink``).
        config_model: the pydantic model of one action's settings.
        factory: builds the action from its name, validated config, its connector (or ``None``
            when ``connector_type`` is ``None``) and the runtime context.
        connector_type: the connector type the action needs, or ``None``.
        description: one line for ``mqferry plugins``.
        connector_optional: the action works without a connector too (``connector`` may be
            left out of its config).
    """

    name: str
    config_model: type[BaseModel]
    factory: ActionFactory
    connector_type: str | None = None
    description: str = ""
    connector_optional: bool = False


@dataclass(frozen=True, slots=True)
class SourceType:
    """A source type; the fields mean what they mean on :class:`ActionType`, and:

    Attributes:
        event_columns: ``(name, description)`` of the columns its events carry, for rule SQL
            (``SELECT value FROM "$bridges/<type>:<name>"``); the console completes them.
    """

    name: str
    config_model: type[BaseModel]
    factory: SourceFactory
    connector_type: str | None = None
    description: str = ""
    event_columns: tuple[tuple[str, str], ...] = ()


T = TypeVar("T", ConnectorType, ActionType, SourceType)
T_contra = TypeVar("T_contra", ConnectorType, ActionType, SourceType, contravariant=True)

_CLASSES: dict[Kind, type[ConnectorType | ActionType | SourceType]] = {
    "connector": ConnectorType, "action": ActionType, "source": SourceType}


class Register(Protocol[T_contra]):
    """What a registration hook receives: ``Register[ActionType]`` and so on."""

    def add(self, item: T_contra) -> None:
        """Register a type object.

        Raises:
            DuplicateTypeError: another plugin registered the same name.
            PluginError: ``item`` is not a type object of the hook's kind.
        """


#: What ``mqferry_register_connector_types`` receives.
ConnectorRegister = Register[ConnectorType]
#: What ``mqferry_register_action_types`` receives.
ActionRegister = Register[ActionType]
#: What ``mqferry_register_source_types`` receives.
SourceRegister = Register[SourceType]


class TypeRegister(Protocol):
    """Any of the three type registers (the specific aliases above say more)."""

    def add(self, item: ConnectorType | ActionType | SourceType) -> None:
        """Register a type object of the hook's kind."""


class FunctionRegister(Protocol):
    """What ``mqferry_register_functions`` receives."""

    def add(
        self,
        name: str,
        func: Callable[..., Any],
        *,
        min_args: int | None = None,
        max_args: int | None = None,
    ) -> None:
        """Register a rule SQL function."""


class TypeRegistry(Generic[T]):
    """The types of one kind, by name, with the plugin that registered each."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self._items: dict[str, tuple[T, str]] = {}

    def add(self, item: T, *, plugin: str) -> None:
        """Register ``item`` on behalf of ``plugin``.

        Raises:
            DuplicateTypeError: another plugin registered the same name.
        """
        if item.name in self._items:
            raise DuplicateTypeError(self.kind, item.name, self._items[item.name][1], plugin)
        self._items[item.name] = (item, plugin)

    def for_plugin(self, plugin: str) -> _PluginRegister[T]:
        """A register object that adds on behalf of ``plugin``."""
        return _PluginRegister(self, plugin)

    def get(self, name: str) -> T | None:
        """The type called ``name``, or ``None``."""
        entry = self._items.get(name)
        return entry[0] if entry else None

    def plugin_of(self, name: str) -> str:
        """The plugin that registered ``name``."""
        return self._items[name][1]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __iter__(self) -> Iterator[T]:
        return (item for item, _ in self._items.values())

    def __contains__(self, name: object) -> bool:
        return name in self._items


class _PluginRegister(Generic[T]):
    def __init__(self, registry: TypeRegistry[T], plugin: str) -> None:
        self._registry: TypeRegistry[T] = registry
        self._plugin = plugin

    def add(self, item: T) -> None:
        kind = self._registry.kind
        expected = _CLASSES[kind]
        if not isinstance(item, expected):
            # a plugin's mistake, named as such rather than an AttributeError deep in the runtime
            raise PluginError(f"plugin {self._plugin!r} registered {item!r} with "
                              f"mqferry_register_{kind}_types; expected a {expected.__name__}",
                              component=self._plugin)
        self._registry.add(item, plugin=self._plugin)


@dataclass(slots=True)
class Registries:
    """The three type registries of one application."""

    connectors: TypeRegistry[ConnectorType]
    actions: TypeRegistry[ActionType]
    sources: TypeRegistry[SourceType]

    @classmethod
    def empty(cls) -> Registries:
        """Registries with nothing registered."""
        return cls(TypeRegistry("connector"), TypeRegistry("action"), TypeRegistry("source"))
