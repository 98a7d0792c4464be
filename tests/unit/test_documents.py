"""One spelling per record: the document models (ray_app/documents.py), the Elasticsearch mappings, the Spark schemas
and every producer of documents agree. No engine: the stream's record rules run in a plain JVM, the forecasts in
this process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel

from ray_app.config import Settings, load_settings
from ray_app.documents import (
    DOCUMENTS,
    BarDocument,
    ForecastDocument,
    ForecastEvaluationDocument,
    ForecastSymbolDocument,
    ForecastTargetDocument,
    RecommendationDocument,
    TradeDocument,
    fields_of,
)
from ray_app.es_indices import MAPPINGS
from ray_app.forecast.evaluation import TargetEvaluation
from ray_app.schemas import Bar, Source
from tests.support.poison import cases

ES_TYPE_OF_SPARK = {
    "string": {"keyword", "text", "date", "date_nanos"},
    "double": {"double"},
    "bigint": {"long"},
    "int": {"integer"},
    "boolean": {"boolean"},
    "map<string,string>": {"object"},
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_APP_STATE_DIR", str(tmp_path_factory.mktemp("documents-state")))
        return load_settings()


def test_every_index_has_its_models_and_its_mapping_is_theirs(settings: Settings) -> None:
    assert set(DOCUMENTS) == set(settings.elasticsearch.indices.by_key()) == set(MAPPINGS)
    for key, models in DOCUMENTS.items():
        declared = {name for model in models for name in model.model_fields}
        assert set(MAPPINGS[key]) == declared, key
        for model in models:
            for name, kind in fields_of(model).items():
                assert MAPPINGS[key][name] == kind.es, (key, name)


def test_the_spark_type_and_the_elasticsearch_type_of_every_field_agree() -> None:
    from spark_jobs.record_rules import spark_schema

    for models in DOCUMENTS.values():
        for model in models:
            if model is ForecastTargetDocument:  # cv: model -> scores, an object of objects (never a Spark column)
                continue
            schema = spark_schema(model)
            assert schema.fieldNames() == list(model.model_fields), model.__name__
            for field, (name, kind) in zip(schema.fields, fields_of(model).items(), strict=True):
                spark = field.dataType.simpleString().removeprefix("array<").removesuffix(">")
                spark = "map<string,string>" if spark.startswith("map<") else spark
                assert kind.es["type"] in ES_TYPE_OF_SPARK[spark], (model.__name__, name, spark, kind.es)
                assert field.nullable == kind.nullable, (model.__name__, name)


# --- the stream's documents: every record of the poison corpus, through the JVM record rules -------------------


@pytest.fixture(scope="module")
def jvm(settings: Settings) -> Iterator[Any]:
    from tests.support.jvm import stream_jvm

    with stream_jvm(settings) as package:
        yield package


def _model_of_index(settings: Settings, index: str) -> type[BaseModel]:
    key = {name: key for key, name in settings.elasticsearch.indices.by_key().items()}[index]
    (model,) = DOCUMENTS[key]
    return model


def test_every_document_the_record_rules_make_is_its_model_field_for_field(jvm: Any, settings: Settings) -> None:
    """Every action's document is its index's model; an update's fields (a cancel, a correction) are fields of the
    trade's model, of their types."""
    from spark_jobs.record_rules import rules_config
    from tests.support.jvm import action

    rules = rules_config(settings)
    now = time.time_ns()
    records = [(case.topic, case.value, case.kafka_ms) for case in cases(now, "documents")]
    for timeframe, vwap, count in (("1Min", 10.1, 7), ("1Hour", None, None)):  # Alpaca's bars, with and without
        bar = Bar(
            symbol="AAPL",
            timestamp_ns=now - 3600 * 10**9,
            source=Source.ALPACA_REST,
            timeframe=timeframe,
            open=10,
            high=11,
            low=9,
            close=10.5,
            volume=100,
            vwap=vwap,
            trade_count=count,
        )
        records.append(("bars", bar.to_json(), None))
    seen: set[type[BaseModel]] = set()
    for topic_key, value, kafka_ms in records:
        topic = getattr(settings.kafka.topics, topic_key).name
        kafka_ms = kafka_ms if kafka_ms is not None else now // 1_000_000
        made = action(jvm, rules, topic, value, offset=3, kafka_ms=kafka_ms)
        model = _model_of_index(settings, made["index"])
        if made["op"] == "update":
            base = TradeDocument(
                symbol="AAPL",
                timestamp="2026-11-30T14:05:00.000000000Z",
                price=1.0,
                size=1.0,
                notional=1.0,
                timestamp_ns=1,
                trade_id="t",
                source="s",
                schema_version=1,
                kafka_partition=0,
                kafka_offset=0,
            ).model_dump()
            if "doc" in made["source"]:  # a cancel: fields merged
                fields = made["source"]["doc"]
            else:  # a correction: what the sink sets from it (and from the trade's first values)
                correction = made["source"]["correction"]
                fields = {
                    **correction,
                    "corrected": True,
                    "corrected_trade_ids": [correction["corrected_trade_id"]],
                    "original_price": base["price"],
                    "original_size": base["size"],
                    "original_conditions": base["conditions"],
                }
                alias = {**made["alias_source"], "trade_doc_id": made["doc_id"]}
                _model_of_index(settings, settings.elasticsearch.indices.trade_aliases).model_validate(alias)
                seen.add("TradeAliasDocument")
            model.model_validate({**base, **fields})  # an unknown field or a wrong type fails here
            seen.add(f"{model.__name__} update")
            continue
        model.model_validate(made["source"])  # extra="forbid": a field the model does not declare fails here
        seen.add(model.__name__)
    assert seen == {
        "TradeDocument",
        "TradeDocument update",
        "QuoteDocument",
        "VendorBarDocument",
        "DeadLetterDocument",
        "TradeAliasDocument",
    }


def test_an_hour_bar_from_minute_bars_is_its_model() -> None:
    from spark_jobs.bar_recompute import hour_bar

    minute = {
        "timestamp": "2026-11-30T14:05:00Z",
        "open": 10.0,
        "high": 11.0,
        "low": 9.5,
        "close": 10.5,
        "volume": 3.0,
        "trade_count": 2,
        "vwap": 10.2,
    }
    volumes = {"volume": 5.0, "notional": 51.0, "trade_count": 3}  # its trades in the volume: odd lots too
    hour = hour_bar("AAPL", 1_764_511_200, [minute], volumes, "2026-11-30T15:00:00Z")
    BarDocument.model_validate(hour)
    assert (hour["volume"], hour["trade_count"], hour["vwap"], hour["notional"]) == (5.0, 3, 10.2, 51.0)


# --- forecasts, evaluations, recommendations --------------------------------------------------------------------


def test_every_forecast_document_of_a_run_is_its_model_with_nothing_undeclared(settings: Settings) -> None:
    from ray_app.forecast import store
    from ray_app.forecast.calendar import CRYPTO
    from ray_app.forecast.engine import forecast_history
    from ray_app.forecast.models import ForecastSpec
    from ray_app.forecast.series import SymbolHistory, bars_frame, build_history
    from ray_app.testing.bars import synthetic_bars

    end = pd.Timestamp("2026-11-27T00:00Z")
    bars = synthetic_bars(CRYPTO, end - pd.Timedelta(days=12), end, "daily_cycle", seed=3)
    frame = bars_frame([{"timestamp": hour.isoformat(), **row} for hour, row in bars.iterrows()])
    spec = ForecastSpec(
        horizon=24,
        cv_windows=2,
        cv_step=24,
        refit=True,
        min_improvement=0.1,
        arima_approximation=True,
        levels=(80, 95),
        models=("AutoETS",),
        season_length=24,
    )
    history = build_history(
        "BTC/USD", frame, CRYPTO, ["high", "low", "close", "volume"], min_points=spec.min_points, max_gap_fraction=0.3
    )
    assert isinstance(history, SymbolHistory)
    result = forecast_history(history, spec)
    run = store.RunContext("run-1", end)
    actions = list(store.forecast_actions(settings, run, result))
    fields = store.history_fields(history) | store.summary_fields(result) | {"market": "CRYPTO", "duration_s": 1.0}
    actions.append(store.symbol_action(settings, run, "BTC/USD", {"status": "ok", **fields}))
    for action in actions:
        doc = action["_source"]
        model = {"forecast": ForecastDocument, "target": ForecastTargetDocument, "symbol": ForecastSymbolDocument}[
            doc.get("record", "forecast")
        ]
        extra = set(doc) - set(model.model_fields)
        assert extra <= {"coverage_80", "coverage_95"}, (model.__name__, extra)  # the levels, by name
        model.model_validate(doc)


def test_an_evaluation_document_is_the_scored_target_and_when_it_was_scored() -> None:
    scored = list(TargetEvaluation.model_fields)
    assert [*scored, "evaluated_at"] == list(ForecastEvaluationDocument.model_fields)


def test_a_stored_recommendation_is_the_answer_and_its_time() -> None:
    from serve_deployments.recommendations import Recommendation

    assert set(RecommendationDocument.model_fields) == set(Recommendation.model_fields) | {"timestamp"}


def test_a_symbol_whose_task_died_is_recorded_with_its_reason_alone(settings: Settings) -> None:
    """The driver writes the record of a symbol whose Ray task died: only the status and the reason are known."""
    from ray_app.forecast import store

    run = store.RunContext("run-2", pd.Timestamp("2026-11-27T00:00Z"))
    action = store.symbol_action(settings, run, "AAPL", {"status": "failed", "reason": "Ray task failed: ..."})
    assert action["_source"]["status"] == "failed" and "market" not in action["_source"]
