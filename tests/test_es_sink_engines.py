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
from ray_app.es_indices import MAPPINGS, client, ensure_index
from ray_app.testing.es_faults import FaultyElasticsearch
from ray_app.testing.jvm import stream_jvm
from spark_jobs.es_sink import WriteReport, sink_config

pytestmark = pytest.mark.engines


@pytest.fixture(scope="module")
def jvm(stack: Settings) -> Iterator[Any]:
    with stream_jvm(stack) as package:
        yield package


@pytest.fixture
def indices(stack: Settings, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A target index (``n`` long, ``k`` keyword, ``t`` date_nanos) and a dead-letters index of the test's own."""
    es = client(stack)
    name = f"sink-{request.node.name.lower()[:40]}"
    target, letters = f"{name}-docs", f"{name}-dead"
    es.indices.create(index=target, mappings={"properties": {"n": {"type": "long"}, "k": {"type": "keyword"},
                                                             "t": {"type": "date_nanos"}}})  # fmt: skip
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
    es = client(settings)
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
    es = client(stack)
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
