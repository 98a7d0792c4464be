"""Live trades (with their cancels and corrections), quotes, minute bars and their updates from Alpaca's websockets,
through alpaca-py's StockDataStream/CryptoDataStream.

alpaca-py owns the protocol (connected -> auth -> subscribe, reconnect with backoff after a dropped connection,
re-subscribe). This module adds what a pipeline needs on top:

- every frame is seen raw before alpaca-py decodes it, so it can be recorded (``--record``) and so a frame that
  is not valid msgpack becomes a dead letter instead of an exception inside alpaca-py;
- a rejected connection (auth failure 402, connection limit 406, symbol limit 405, insufficient subscription
  409) stops the source with a clear error, where alpaca-py alone would log it and retry forever;
- Alpaca's free-plan limit of 30 symbols per stock stream is checked before connecting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from alpaca.data.enums import DataFeed
from alpaca.data.live.crypto import CryptoDataStream
from alpaca.data.live.stock import StockDataStream

from ray_app.config import Settings
from ray_app.ingest.producer import IngestItem
from ray_app.ingest.recording import FrameRecorder, split_frame
from ray_app.lifecycle import StopFlag
from ray_app.schemas import Source, is_crypto

# Alpaca's error codes that no reconnect can fix
FATAL_CODES = {
    401: "not authenticated",
    402: "auth failed",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    409: "insufficient subscription",
}


class AlpacaStreamError(RuntimeError):
    """The stream cannot go on (bad keys, plan limits); the message says what Alpaca answered."""


class _Hooks:
    """What the stream classes below share: a tap on raw frames, and fatal-error detection."""

    feed_name: str
    _ws: Any
    fatal: AlpacaStreamError | None
    _reconnect_min_backoff: float  # alpaca-py's reconnect pacing (its DataStream's)
    _reconnect_max_backoff: float

    def _setup_hooks(self, on_frame: Callable[[str, bytes], bytes]) -> None:
        self._on_frame = on_frame
        self.fatal = None

    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[misc]
        receive = self._ws.recv

        async def tapped_recv() -> bytes:
            return self._on_frame(self.feed_name, await receive())

        self._ws.recv = tapped_recv

    async def _auth(self) -> None:
        try:
            await super()._auth()  # type: ignore[misc]
        except ValueError as exc:
            await self._give_up(f"Alpaca rejected the {self.feed_name} stream's login: {exc}")
            raise

    async def _dispatch(self, msg: dict) -> None:
        if msg.get("T") == "error" and msg.get("code") in FATAL_CODES:
            await self._give_up(f"Alpaca {self.feed_name} stream error {msg.get('code')}: {msg.get('msg')}")
            return
        await super()._dispatch(msg)  # type: ignore[misc]

    async def _give_up(self, message: str) -> None:
        if self.fatal is None:
            self.fatal = AlpacaStreamError(message)
        await self.stop_ws()  # type: ignore[attr-defined]


class _StockStream(_Hooks, StockDataStream):
    feed_name = "stocks"


class _CryptoStream(_Hooks, CryptoDataStream):
    feed_name = "crypto"


def check_ready(settings: Settings, symbols: list[str]) -> None:
    """Keys present and symbols within the plan's limit, before anything connects."""
    if not (settings.alpaca.api_key and settings.alpaca.secret_key):
        raise AlpacaStreamError(
            "Alpaca's live streams need API keys: set ALPACA_API_KEY and ALPACA_SECRET_KEY "
            "(or use --source simulate to run offline)"
        )
    check_symbol_limits(settings, symbols)


def check_symbol_limits(settings: Settings, symbols: list[str]) -> None:
    stocks = [s for s in symbols if not is_crypto(s)]
    limit = settings.alpaca.max_symbols_per_stream
    if len(stocks) > limit:
        raise AlpacaStreamError(
            f"{len(stocks)} stock symbols configured, but Alpaca's {settings.alpaca.feed} stream on this plan allows "
            f"{limit} (alpaca.max_symbols_per_stream): subscribe to fewer symbols or raise the limit for a paid plan"
        )


class AlpacaLiveSource:
    """Runs the stock and crypto streams (one connection each, as Alpaca allows) until stopped."""

    def __init__(
        self,
        settings: Settings,
        send: Callable[[IngestItem], None],
        stop: StopFlag,
        record: FrameRecorder | None = None,
        symbols: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.send = send
        self.stop = stop
        self.record = record
        self.symbols = symbols or settings.symbols
        self.frames = 0
        alpaca = settings.alpaca
        check_ready(settings, self.symbols)
        assert alpaca.api_key is not None and alpaca.secret_key is not None  # check_ready refuses them missing
        key, secret = alpaca.api_key.get_secret_value(), alpaca.secret_key.get_secret_value()
        params = {"ping_interval": 10, "ping_timeout": 30, "max_queue": 1024}
        self.streams: list[_Hooks] = []
        stocks = [s for s in self.symbols if not is_crypto(s)]
        crypto = [s for s in self.symbols if is_crypto(s)]
        if stocks:
            stock_stream = _StockStream(
                key,
                secret,
                raw_data=True,
                feed=DataFeed(alpaca.feed),
                websocket_params=params,
                url_override=alpaca.stock_stream_url,
            )
            stock_stream._setup_hooks(self._on_frame)
            stock_stream.subscribe_trades(self._ignore, *stocks)
            # Alpaca sends a trade's cancels/errors and corrections to its trades' subscribers; alpaca-py dispatches
            # them only with these handlers registered
            stock_stream.register_trade_cancels(self._ignore)
            stock_stream.register_trade_corrections(self._ignore)
            stock_stream.subscribe_quotes(self._ignore, *stocks)
            stock_stream.subscribe_bars(self._ignore, *stocks)
            # a minute's bar again ~30 s later when a late print changed it: kept beside ours (vendor-bars-1m)
            stock_stream.subscribe_updated_bars(self._ignore, *stocks)
            self.streams.append(stock_stream)
        if crypto:
            crypto_stream = _CryptoStream(
                key, secret, raw_data=True, websocket_params=params, url_override=alpaca.crypto_stream_url
            )
            crypto_stream._setup_hooks(self._on_frame)
            crypto_stream.subscribe_trades(self._ignore, *crypto)
            crypto_stream.subscribe_quotes(self._ignore, *crypto)
            crypto_stream.subscribe_bars(self._ignore, *crypto)
            crypto_stream.subscribe_updated_bars(self._ignore, *crypto)
            self.streams.append(crypto_stream)
        for stream in self.streams:
            stream._reconnect_min_backoff = alpaca.reconnect_min_s
            stream._reconnect_max_backoff = alpaca.reconnect_max_s

    @staticmethod
    async def _ignore(_: Any) -> None:
        """Records are taken from the raw frame tap; alpaca-py's handlers only drive its subscriptions."""

    def _on_frame(self, feed: str, frame: bytes) -> bytes:
        self.frames += 1
        if self.record:
            self.record.write(feed, frame)
        source = Source.ALPACA_STREAM
        items, control = split_frame(frame, source, self.symbols)
        for item in items:
            self.send(item)  # never blocks: the producer runs on a thread of its own (producer.BackgroundSender)
        return control

    async def _watch_stop(self) -> None:
        while not self.stop.is_set() and not any(s.fatal for s in self.streams):
            await asyncio.sleep(0.1)
        for stream in self.streams:
            with contextlib.suppress(Exception):
                await stream.stop_ws()  # type: ignore[attr-defined]

    async def run_async(self) -> None:
        watcher = asyncio.ensure_future(self._watch_stop())
        try:
            await asyncio.gather(*(stream._run_forever() for stream in self.streams))  # type: ignore[attr-defined]
        finally:
            watcher.cancel()
            for stream in self.streams:
                with contextlib.suppress(Exception):
                    await stream.close()  # type: ignore[attr-defined]
        fatal = next((s.fatal for s in self.streams if s.fatal), None)
        if fatal:
            raise fatal

    def run(self) -> None:
        asyncio.run(self.run_async())
