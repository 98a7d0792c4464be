"""Ingest failure paths without engines: one bad message costs only itself, the spill journal keeps order and
bounds, a broken recording is dead letters, a stalled or cut Alpaca REST call is retried and Ctrl-C ends it."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import msgpack
import pytest

from ray_app.config import load_settings
from ray_app.ingest.journal import JournalBusy, JournalEntry, SpillJournal
from ray_app.ingest.producer import IngestProducer
from ray_app.ingest.recording import FrameRecorder, frame_items, replay, split_frame
from ray_app.lifecycle import StopFlag
from ray_app.schemas import DeadLetter, Source, Trade
from ray_app.testing.fake_alpaca import FakeAlpaca, trade_message

T0 = 1_795_793_400_123_456_789
ALLOWED = {"AAPL", "BTC/USD"}


def _good(i: int) -> dict:
    return trade_message("AAPL", T0 + i, 100.0 + i, 1, i + 1)


# messages that once escaped the parser, each of a different kind: a type that is not a string (unhashable), a
# timestamp past what any store can hold, a map with non-string keys, a nested junk value, a bare integer
BAD_MESSAGES = [
    {"T": ["t"], "S": "AAPL"},
    {**_good(0), "t": msgpack.Timestamp(2**62, 0)},
    {**_good(0), "t": msgpack.Timestamp(2**34, 0)},  # year 2514: a valid msgpack time, past 2262
    {1: 2, "T": "t"},
    {**_good(0), "p": {"nested": [1, {"x": b"\xff"}]}},
    {**_good(0), "c": [[["deep"]]]},
    7,
]


@pytest.mark.parametrize("bad", BAD_MESSAGES, ids=range(len(BAD_MESSAGES)))
def test_one_bad_message_in_a_frame_costs_only_itself(bad) -> None:
    frame = msgpack.packb([_good(1), bad, _good(2)], datetime=False)
    items = list(frame_items(frame, Source.ALPACA_STREAM, ALLOWED))
    assert [type(i) for i in items] == [Trade, DeadLetter, Trade]
    assert [i.trade_id for i in items if isinstance(i, Trade)] == ["2", "3"]
    letter = items[1]
    assert letter.reason in {"unparseable", "invalid_value", "unknown_type", "missing_field"} and letter.detail
    json.loads(letter.to_json())  # a dead letter always encodes


def test_alpaca_py_only_ever_sees_well_formed_control_messages() -> None:
    def control_messages(frame: bytes) -> bytes:
        return split_frame(frame, Source.ALPACA_STREAM, ALLOWED)[1]

    connected = {"T": "success", "msg": "connected"}
    frame = msgpack.packb([connected, _good(1), {"T": ["x"]}, 7])
    assert msgpack.unpackb(control_messages(frame)) == [connected]
    assert msgpack.unpackb(control_messages(b"\xc1 not msgpack")) == []
    only_control = msgpack.packb([connected])
    assert control_messages(only_control) == only_control


def test_a_record_that_validates_but_cannot_be_encoded_becomes_a_dead_letter() -> None:
    settings = load_settings()
    producer = IngestProducer(settings, **{"bootstrap.servers": "127.0.0.1:1"})
    # model_construct skips validation: what a future field or a bug in a source could let through
    unencodable = Trade.model_construct(
        symbol="AAPL",
        timestamp_ns=10**30,
        price=1.0,
        size=1.0,
        trade_id="1",
        source=Source.REPLAY,
        exchange=None,
        conditions=[],
        tape=None,
        taker_side=None,
        schema_version=1,
        kind="trade",
    )
    entry = producer.encode(unencodable)
    assert entry.topic == settings.kafka.topics.dead_letters.name
    letter = json.loads(entry.value)
    assert letter["reason"] == "unserialisable" and "cannot be encoded" in letter["detail"]
    assert json.loads(letter["raw"])["timestamp_ns"] == 10**30


def test_the_spill_journal_keeps_order_across_reads_and_a_put_front(tmp_path) -> None:
    journal = SpillJournal(tmp_path / "j", max_bytes=10_000)
    entries = [JournalEntry("trades", b"AAPL", f"v{i}".encode()) for i in range(10)]
    for entry in entries[:6]:
        assert journal.append(entry)
    assert journal.read(limit=4) == entries[:4]
    # 0-3 were handed to librdkafka and purged back; 4-5 unread; 6-9 arrive later
    journal.put_front(entries[:4])
    for entry in entries[6:]:
        journal.append(entry)
    assert list(journal.entries()) == entries
    assert journal.read(limit=100) == entries
    assert journal.clear_if_read() and not journal.pending()
    with pytest.raises(JournalBusy, match="another ingest"):
        SpillJournal(tmp_path / "j", max_bytes=10_000)
    journal.close()
    small = SpillJournal(tmp_path / "small", max_bytes=100)
    assert small.append(entries[0]) and not small.append(JournalEntry("trades", b"k", b"x" * 200))


def test_a_broken_recording_is_dead_letters_and_the_good_frames_still_play(tmp_path) -> None:
    path = tmp_path / "session.msgpack"
    recorder = FrameRecorder(path)
    recorder.write("stocks", msgpack.packb([_good(1)]))
    recorder.close()
    with path.open("ab") as file:
        file.write(msgpack.packb({"feed": "stocks", "frame": 3}))  # an entry that is not a recorded frame
        file.write(msgpack.packb([1, 2, 3]))  # not even a map
        file.write(msgpack.packb({"feed": "stocks", "received_ns": 1, "frame": msgpack.packb([_good(2)])}))
        file.write(b"\xc1\xc1\xc1 garbage after a crash")  # 0xc1 is never valid msgpack
    items = list(replay(path, ALLOWED, speed=0, stop=StopFlag()))
    assert [type(i).__name__ for i in items] == ["Trade", "DeadLetter", "DeadLetter", "Trade", "DeadLetter"]
    assert "is not a recorded frame" in items[1].detail and "cannot be read from byte" in items[4].detail
    assert items[4].raw_encoding == "base64"


@pytest.fixture
def fake():
    with FakeAlpaca(page_size=1000) as server:
        yield server


def _backfill_settings(fake: FakeAlpaca, **alpaca: object):
    settings = load_settings()
    return settings.model_copy(
        update={
            "alpaca": settings.alpaca.model_copy(
                update={"data_url": fake.http_url, "rest_retry_wait_s": 0.05, "rest_timeout_s": 1.0, **alpaca}
            )
        }
    )


def test_backfill_retries_stalled_and_cut_requests(fake) -> None:
    from ray_app.ingest.backfill import backfill

    settings = _backfill_settings(fake)
    fake.stall_next(1, seconds=5)
    fake.reset_next(1)
    messages: list[str] = []
    end = datetime(2026, 11, 27, 21, tzinfo=UTC)
    began = time.monotonic()
    bars = list(backfill(settings, 1, "1Hour", StopFlag(), symbols=["BTC/USD"], end=end, on_retry=messages.append))
    assert len(bars) == 24 and time.monotonic() - began < 5
    assert any("timed out" in m for m in messages) and any("could not connect" in m for m in messages), messages


def test_backfill_gives_up_with_a_clear_error_after_its_attempts(fake) -> None:
    from ray_app.ingest.backfill import BackfillError, backfill

    settings = _backfill_settings(fake, backfill_attempts=2)
    fake.reset_next(5)
    with pytest.raises(BackfillError, match="could not connect 2 times"):
        list(backfill(settings, 1, "1Hour", StopFlag(), symbols=["BTC/USD"]))


def test_ctrl_c_ends_a_backfill_during_a_stalled_request(fake) -> None:
    from ray_app.ingest.backfill import backfill

    settings = _backfill_settings(fake, rest_timeout_s=60.0)
    fake.stall_next(1, seconds=30)
    stop = StopFlag()
    threading.Timer(0.5, stop.set).start()
    began = time.monotonic()
    assert list(backfill(settings, 1, "1Hour", stop, symbols=["BTC/USD"])) == []
    assert time.monotonic() - began < 3


def test_offsets_of_a_partition_without_a_leader_yet_are_asked_again_and_other_errors_raise() -> None:
    """A topic just created (or a broker just restarted) answers NOT_LEADER_FOR_PARTITION for a moment: the
    simulator's progress read asks again instead of failing the ingest (seen on a private SASL_SSL broker)."""
    from confluent_kafka import KafkaError, KafkaException

    from ray_app.kafka_clients import watermark_offsets

    class NewPartition:  # the consumer's one method this uses, answering as librdkafka does right after creation
        def __init__(self, failures: list[int]) -> None:
            self.failures = failures

        def get_watermark_offsets(self, _partition, timeout: float) -> tuple[int, int]:
            if self.failures:
                raise KafkaException(KafkaError(self.failures.pop(0)))
            return 3, 9

    not_yet = [KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE]
    assert watermark_offsets(NewPartition(not_yet), "t", 0, timeout_s=5) == (3, 9)
    with pytest.raises(KafkaException):
        watermark_offsets(NewPartition([KafkaError.TOPIC_AUTHORIZATION_FAILED]), "t", 0, timeout_s=5)
    with pytest.raises(KafkaException):  # still no leader when the time is up
        watermark_offsets(NewPartition([KafkaError.NOT_LEADER_FOR_PARTITION] * 100), "t", 0, timeout_s=0.5)
