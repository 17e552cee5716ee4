"""What an action would send for a rule output, rendered without sending (``/rules/:id/test``).

Rendering runs in a worker thread of the tester; whatever it raises is shown as the action's error.

An action may offer ``preview(output) -> dict``; otherwise an action with a Kafka record renderer
(``renderer.render_topic`` ...) is shown as the record it would produce, and any other action as
the output it would receive.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from mqferry.errors import MqferryError

__all__ = ["preview"]


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()


def preview(action: Any, output: Mapping[str, Any]) -> dict[str, Any]:
    """The message ``action`` would produce for ``output``, or the reason it would fail."""
    custom = getattr(action, "preview", None)
    try:
        if callable(custom):
            return dict(custom(output))
        r = getattr(action, "renderer", None)
        if r is not None and hasattr(r, "render_topic"):
            params = getattr(action, "params", None)
            return {
                "topic": r.render_topic(output),
                # The partition is picked when the batch is sent, from the topic's current
                # partition count; the strategy says how.
                "partition": None,
                "partition_strategy": getattr(params, "partition_strategy", None),
                "key": _text(r.render_key(output)),
                "value": _text(r.render_value(output)),
                "headers": [{"key": k, "value": _text(v)} for k, v in r.render_headers(output)],
                "timestamp": r.render_timestamp(output),
            }
    except MqferryError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # a template or plugin failing on this output: the preview says so
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"output": dict(output)}
