"""The streaming job's Elasticsearch sink (spark_jobs/jvm BulkClient.java) against the real Elasticsearch, in a
plain JVM: every document Elasticsearch refuses is isolated and becomes a dead letter with Elasticsearch's reason,
the rest is indexed exactly once; transient errors are retried, never dead-lettered; a dead letter that is
itself refused never fails the write."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from py4j.protocol import Py4JJavaError

from ray_app.config import Settings
from ray_app.documents import DeadLetterDocument
from ray_app.es_indices import MAPPINGS, ensure_index, es_client
from spark_jobs.es_sink import WriteReport, sink_config
from tests.support.es_faults import FaultyElasticsearch
from tests.support.jvm import stream_jvm


@pytest.fixture(scope="module")
def jvm(stack: Settings) -> Iterator[Any]:
    with stream_jvm(stack) as package:
        yield package


@pytest.fixture
def indices(stack: Settings, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A target index (``n`` long, ``k`` keyword, ``t`` date_nanos) and a dead-letters index of the test's own."""
    es = es_client(stack)
    name = f"sink-{request.node.name.lower()[:40]}"
    target, letters = f"{name}-docs", f"{name}-dead"
    es.indices.create(
        index=target,
        mappings={"properties": {"n": {"type": "long"}, "k": {"type": "keyword"}, "t": {"type": "date_nanos"}}},
    )
    ensure_index(stack, es, letters, MAPPINGS["dead_letters"])
    yield target, letters
    es.indices.delete(index=f"{target},{letters}", ignore_unavailable=True)


def config(settings: Settings, letters: str, url: str | None = None, **changes: Any) -> str:
    data = json.loads(sink_config(settings)) | {"dead_letters_index": letters, "retry_wait_s": 0.05} | changes
    if url:
        data["url"] = url
    return json.dumps(data)


def write(jvm: Any, docs: list[tuple[str, str, str]], cfg: str) -> WriteReport:
    return WriteReport.from_json(jvm.EsBulkSink.writeLocal(json.dumps(docs), cfg))


def stored(settings: Settings, index: str) -> dict[str, dict]:
    es = es_client(settings)
    es.indices.refresh(index=index)
    return {hit["_id"]: hit["_source"] for hit in es.search(index=index, size=10_000)["hits"]["hits"]}


def test_every_refused_document_is_isolated_and_dead_lettered_and_the_rest_indexed(jvm, stack, indices) -> None:
    target, letters = indices
    good = [(target, f"good-{i}", json.dumps({"n": i, "k": f"k{i}"})) for i in range(1200)]
    refused = {
        "x" * 600: json.dumps({"n": 1}),  # an id over 512 bytes: Elasticsearch refuses the whole request (400)
        "conflict": json.dumps({"n": "not a number"}),  # mapping conflict (item 400)
        "immense": json.dumps({"k": "y" * 40_000}),  # a keyword over Lucene's 32 KB term limit (item 400)
        "year-2500": json.dumps({"t": "2500-01-01T00:00:00Z"}),  # beyond date_nanos (item 400)
        "not-an-object": "[1, 2]",
    }
    docs = list(good)
    for position, (doc_id, source) in zip((3, 400, 401, 900, 1199), refused.items(), strict=True):
        docs.insert(position, (target, doc_id, source))
    report = write(jvm, docs, config(stack, letters, batch_entries=500))

    assert report.indexed[target] == len(good) and report.rejected == len(refused)
    assert report.splits > 0, "the request holding the long id was refused whole and must have been split"
    assert set(stored(stack, target)) == {doc_id for _, doc_id, _ in good}
    dead = stored(stack, letters)
    assert report.indexed[letters] == len(refused) == len(dead)
    by_doc = {letter["doc_id"]: letter for letter in dead.values()}
    assert set(by_doc) == {doc_id[:512] for doc_id in refused}
    assert "action_request_validation_exception" in by_doc["x" * 512]["detail"]
    assert "document_parsing_exception" in by_doc["conflict"]["detail"]
    assert "immense" in by_doc["immense"]["detail"].lower() or "32766" in by_doc["immense"]["detail"]
    for doc_id, letter in by_doc.items():
        assert letter["reason"] == "rejected" and letter["intended_index"] == target
        DeadLetterDocument.model_validate(letter)  # the sink's own dead letter is the model, field for field
        assert letter["raw_bytes"] == len(refused[next(k for k in refused if k[:512] == doc_id)].encode())
    assert all(len(letter_id.encode()) <= 512 for letter_id in dead)


def test_transient_errors_are_retried_not_dead_lettered(jvm, stack, indices) -> None:
    target, letters = indices
    docs = [(target, f"t-{i}", json.dumps({"n": i})) for i in range(300)]
    with FaultyElasticsearch(stack.elasticsearch.url) as proxy:
        proxy.refuse_requests(2, 503)
        proxy.refuse_items(3, 429)
        report = write(jvm, docs, config(stack, letters, url=proxy.url, batch_entries=100, retry_count=4))
    assert report.indexed == {target: 300} and report.rejected == 0
    assert report.retried_requests >= 2 and report.retried_items == 3
    assert len(stored(stack, target)) == 300 and not stored(stack, letters)


def test_an_outage_that_outlasts_the_retries_fails_the_write_instead_of_dropping(jvm, stack, indices) -> None:
    target, letters = indices
    with FaultyElasticsearch(stack.elasticsearch.url) as proxy:
        proxy.refuse_requests(10, 429)
        with pytest.raises(Py4JJavaError) as failure:
            write(jvm, [(target, "a", json.dumps({"n": 1}))], config(stack, letters, url=proxy.url, retry_count=2))
    assert "did not take a bulk request after 3 tries: HTTP 429" in str(failure.value.java_exception.getMessage())
    assert not stored(stack, letters)


def test_elasticsearch_behind_a_path_prefix_is_reached_under_it(jvm, stack, indices) -> None:
    """Issue 33: the sink rebuilt the URL as scheme://host:port and dropped a path prefix (https://h/es): every batch
    failed behind such a proxy while the Python clients worked."""
    target, letters = indices
    with FaultyElasticsearch(stack.elasticsearch.url, prefix="/es") as proxy:
        report = write(jvm, [(target, "p", json.dumps({"n": 7}))], config(stack, letters, url=proxy.url + "/"))
    assert report.indexed[target] == 1 and stored(stack, target)["p"] == {"n": 7}
    assert proxy.paths and all(path.startswith("/es/_") for path in proxy.paths)


def test_a_request_size_limit_is_met_by_splitting_and_one_document_over_it_dead_lettered(jvm, stack, indices) -> None:
    target, letters = indices
    docs = [(target, f"s-{i}", json.dumps({"n": i, "k": "v" * 100})) for i in range(60)]
    docs.insert(30, (target, "huge", json.dumps({"n": 1, "k": "w" * 5000})))
    with FaultyElasticsearch(stack.elasticsearch.url) as proxy:
        proxy.max_body_bytes = 3000
        report = write(jvm, docs, config(stack, letters, url=proxy.url))
    assert report.indexed[target] == 60 and report.rejected == 1
    (letter,) = stored(stack, letters).values()
    assert letter["doc_id"] == "huge" and "413" in letter["detail"]


def test_a_dead_letter_refused_too_is_kept_without_its_raw_or_counted_never_fatal(jvm, stack, indices) -> None:
    target, letters = indices
    es = es_client(stack)
    strict = f"{letters}-strict"
    es.indices.create(index=strict, mappings={"properties": {"raw": {"type": "long"}}})  # every full letter refused
    hopeless = f"{letters}-hopeless"
    es.indices.create(index=hopeless, mappings={"properties": {"detail": {"type": "long"}}})  # every letter refused
    try:
        bad = [(target, "conflict", json.dumps({"n": "text"}))]
        report = write(jvm, bad, config(stack, strict))
        assert report.rejected == 1 and report.lost_dead_letters == 0
        (letter,) = stored(stack, strict).values()
        assert "raw" not in letter and letter["raw_truncated"] is True and letter["raw_sha256"]
        report = write(jvm, [*bad, (target, "fine", json.dumps({"n": 2}))], config(stack, hopeless))
        assert report.rejected == 1 and report.lost_dead_letters == 1 and report.indexed[target] == 1
    finally:
        es.indices.delete(index=f"{strict},{hopeless}", ignore_unavailable=True)


# --- cancels and corrections, and two actions on one document ----------------------------------------------------


@pytest.fixture(scope="module")
def own(stack: Settings) -> Iterator[Settings]:
    """Settings with indices of this module's own (trades, aliases, dead letters), created."""
    from ray_app.testing.settings import own_indices_created

    with own_indices_created(stack, "sku") as settings:
        yield settings


def _rows(jvm: Any, settings: Settings, records: list[Any], first_offset: int = 0) -> list[list[Any]]:
    """The records as the record rules make them, with their Kafka coordinates: what the executors hand the sink."""
    from spark_jobs.record_rules import rules_config
    from tests.support.jvm import action

    topic = settings.kafka.topics.trades.name
    rows = []
    for offset, record in enumerate(records, start=first_offset):
        made = action(jvm, rules_config(settings), topic, record.to_json(), offset=offset, partition=4)
        rows.append(
            [
                made["index"],
                made["doc_id"],
                json.dumps(made["source"]),
                made["op"],
                topic,
                4,
                offset,
                made["alias_id"],
                json.dumps(made["alias_source"]) if made["alias_source"] else None,
            ]
        )
    return rows


def test_cancels_and_corrections_find_their_trade_by_any_id_of_its_chain_and_keep_the_first_values(
    jvm: Any, own: Settings
) -> None:
    """A correction, a correction of it by its new id, another by the first id, a cancel naming the middle one, all
    in one write and then again (a replay): the trade ends cancelled at the last correction's values, its first
    values in original_*, every corrected id in order; the aliases point at it; a cancel of an id no trade has is
    one dead letter named by its Kafka record."""
    from ray_app.schemas import Source, Trade, TradeCancel, TradeCorrection

    at = 1_795_965_600 * 10**9  # 2026-11-29 10:00 New York

    def corrected(named: str, new: str, price: float, seconds: int) -> TradeCorrection:
        return TradeCorrection(
            symbol="AAPL",
            timestamp_ns=at + seconds * 10**9,
            exchange="V",
            original_trade_id=named,
            original_price=1.0,
            original_size=1.0,
            corrected_trade_id=new,
            corrected_price=price,
            corrected_size=90.0,
            corrected_conditions=["@", "I"],
            source=Source.SIMULATOR,
        )

    trade = Trade(
        symbol="AAPL",
        timestamp_ns=at,
        price=110.0,
        size=100.0,
        trade_id="9",
        exchange="V",
        conditions=["@"],
        source=Source.SIMULATOR,
    )
    records = [
        trade,
        corrected("9", "109", 111.0, 10),
        corrected("109", "209", 112.0, 20),
        corrected("9", "309", 113.0, 30),
        TradeCancel(
            symbol="AAPL",
            timestamp_ns=at + 40 * 10**9,
            trade_id="209",
            exchange="V",
            price=1.0,
            size=1.0,
            source=Source.SIMULATOR,
        ),
        TradeCancel(
            symbol="AAPL",
            timestamp_ns=at + 50 * 10**9,
            trade_id="777",
            exchange="V",
            price=1.0,
            size=1.0,
            source=Source.SIMULATOR,
        ),
    ]
    rows = _rows(jvm, own, records)
    cfg = sink_config(own)
    for replay in (False, True):
        report = write(jvm, rows[1:] if replay else rows, cfg)
        assert report.rejected == 1 and report.touched == [f"AAPL|{at // 10**9 // 60 * 60}"]
    indices = own.elasticsearch.indices
    doc = stored(own, indices.trades)["AAPL|V|2026-11-29|9"]
    assert (doc["price"], doc["size"], doc["conditions"], doc["cancelled"]) == (113.0, 90.0, ["@", "I"], True)
    assert (doc["original_price"], doc["original_size"], doc["original_conditions"]) == (110.0, 100.0, ["@"])
    assert doc["corrected_trade_ids"] == ["109", "209", "309"] and doc["corrected_trade_id"] == "309"
    aliases = stored(own, indices.trade_aliases)
    assert {k: v["trade_doc_id"] for k, v in aliases.items()} == {
        f"AAPL|V|2026-11-29|{n}": "AAPL|V|2026-11-29|9" for n in ("109", "209", "309")
    }
    letters = stored(own, indices.dead_letters)
    letter = letters[f"{own.kafka.topics.trades.name}|4|5"]
    assert (letter["reason"], letter["partition"], letter["offset"]) == ("unknown_trade", 4, 5)


def test_two_actions_on_one_document_land_in_the_order_read_with_requests_in_flight_and_retries(
    jvm: Any, stack: Settings, indices: tuple[str, str]
) -> None:
    """300 versions of 3 documents, interleaved, in requests of 7 with two out at once, through a proxy that answers
    429 for items now and then: each document ends as its last version."""
    target, letters = indices
    docs = [(target, f"doc-{n % 3}", json.dumps({"n": n})) for n in range(300)]
    with FaultyElasticsearch(stack.elasticsearch.url) as proxy:
        proxy.refuse_items(3, 429, requests=4)
        report = write(
            jvm, docs, config(stack, letters, url=proxy.url, batch_entries=7, max_in_flight=2, retry_count=10)
        )
    assert report.rejected == 0 and report.retried_items > 0
    assert {k: v["n"] for k, v in stored(stack, target).items()} == {"doc-0": 297, "doc-1": 298, "doc-2": 299}
