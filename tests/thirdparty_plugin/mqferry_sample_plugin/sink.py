"""An action that appends each rule output to a file as one JSON line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mqferry import ActionConfigBase, Delivery, HealthStatus, Status, Strict, action_metrics


class FileSinkParameters(Strict):
    path: str


class FileSinkConfig(ActionConfigBase):
    parameters: FileSinkParameters


class FileSink:
    def __init__(self, name: str, config: FileSinkConfig) -> None:
        self.metrics = action_metrics(f"file_sink:{name}")
        self.path = Path(config.parameters.path)

    def submit(self, output: Mapping[str, Any], delivery: Delivery) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(dict(output), sort_keys=True) + "\n")
        self.metrics.inc("success")
        delivery.secured()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def health(self) -> HealthStatus:
        return HealthStatus(Status.CONNECTED)
