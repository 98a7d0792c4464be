"""A query of Grafana's Infinity datasource (yesoreyeram-infinity-datasource) for the foundation SDK's panels.

The SDK has no Infinity builder; this one writes the query model the plugin saves: a JSON URL relative to the
datasource's base URL (the Serve app), parsed by the plugin's backend parser into typed columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

INFINITY_TYPE = "yesoreyeram-infinity-datasource"
ColumnType = Literal["string", "number", "timestamp", "boolean"]


@dataclass
class Column:
    selector: str
    type: ColumnType = "number"
    text: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"selector": self.selector, "text": self.text or self.selector, "type": self.type}


@dataclass
class InfinityQueryModel(cogvariants.Dataquery):
    ref_id: str
    url: str
    columns: list[Column] = field(default_factory=list)
    datasource: DataSourceRef | None = None
    format: Literal["table", "timeseries"] = "table"
    root_selector: str = ""

    def to_json(self) -> dict[str, Any]:
        model: dict[str, Any] = {
            "refId": self.ref_id,
            "type": "json",
            "source": "url",
            "parser": "backend",
            "format": self.format,
            "url": self.url,
            "url_options": {"method": "GET", "data": ""},
            "root_selector": self.root_selector,
            "columns": [column.to_json() for column in self.columns],
        }
        if self.datasource is not None:
            model["datasource"] = self.datasource.to_json()
        return model


class InfinityQuery(cogbuilder.Builder[InfinityQueryModel]):
    def __init__(self, ref_id: str, url: str, datasource: DataSourceRef) -> None:
        self._internal = InfinityQueryModel(ref_id=ref_id, url=url, datasource=datasource)

    def build(self) -> InfinityQueryModel:
        return self._internal

    def columns(self, *columns: Column) -> InfinityQuery:
        self._internal.columns = list(columns)
        return self

    def timeseries(self) -> InfinityQuery:
        self._internal.format = "timeseries"
        return self
