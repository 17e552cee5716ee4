"""What an action would send for a rule output, rendered without sending (``/rules/:id/test``).

Rendering runs in a worker thread of the tester; whatever it raises is shown as the action's error.

An action may offer ``preview(output) -> dict`` (the Kafka producer shows the record it would
produce); any other action is shown as the output it would receive. The core knows no action
type's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mqferry._errors import MqferryError

__all__ = ["preview"]


def preview(action: Any, output: Mapping[str, Any]) -> dict[str, Any]:
    """The message ``action`` would produce for ``output``, or the reason it would fail."""
    custom = getattr(action, "preview", None)
    try:
        if callable(custom):
            return dict(custom(output))
    except MqferryError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # a template or plugin failing on this output: the preview says so
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"output": dict(output)}
