"""A local Alpaca market-data server that speaks Alpaca's real protocols, for tests and offline demos.

Point the real alpaca-py clients at it with ``url_override`` (the settings ``alpaca.stock_stream_url``,
``alpaca.crypto_stream_url``, ``alpaca.data_url``). It implements:

- the msgpack websocket: ``[{"T":"success","msg":"connected"}]`` on connect, then ``auth`` ->
  ``authenticated`` or error 402 ``auth failed``; one connection per endpoint (a second gets 406 ``connection
  limit exceeded``); ``subscribe`` -> a ``subscription`` echo of all channels, or 405 ``symbol limit
  exceeded``; trades ``T:"t"``, quotes ``T:"q"``, bars ``T:"b"`` and updated bars ``T:"u"`` with msgpack timestamps
  (nanoseconds), several messages per frame, only for subscribed symbols; and, as Alpaca does on the stock feed,
  trade cancels/errors ``T:"x"`` and corrections ``T:"c"`` to every subscriber of the symbol's trades (a trades
  subscription subscribes ``cancelErrors`` and ``corrections`` too, and the echo lists them);
- a session played as Alpaca streams it (``play``): the simulator's records in the order the tape sends them, and
  the minute bars Alpaca builds from those trades with its published rules (``alpaca_rules``): a minute's ``b`` as
  soon as the feed's clock passes the minute's end, an ``updatedBars`` ``u`` 30 s later when a late print reached
  the minute meanwhile; no bar for a minute without a trade that sets a price; cancels and corrections change no
  bar (Alpaca's live bars do not take a trade back);
- the REST bars endpoints ``/v2/stocks/bars`` (API key headers required) and ``/v1beta3/crypto/us/bars`` (no
  keys), answering ``{"bars": {SYMBOL: [...]}, "next_page_token": ...}`` with pages of ``page_size`` bars.

And, like bytewax's testing sources, it misbehaves on cue: ``drop_connections()`` cuts every websocket,
``fail_next(n, 429)`` answers the next n REST calls with HTTP 429, ``stall_next`` and ``reset_next`` hang or cut
them, ``publish_raw`` sends any bytes as a frame.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
from aiohttp import WSMsgType, web

from ray_app.schemas import Quote, Trade, TradeCancel, TradeCorrection
from ray_app.testing.alpaca_rules import counts_in_volume, sets_price
from ray_app.times import format_ns

STOCK_PATHS = ("/v2/iex", "/v2/sip")
CRYPTO_PATH = "/v1beta3/crypto/us"
CHANNELS = (
    "trades",
    "quotes",
    "bars",
    "updatedBars",
    "dailyBars",
    "statuses",
    "lulds",
    "corrections",
    "cancelErrors",
    "orderbooks",
)
_TIMEFRAME_SECONDS = {"1Min": 60, "1Hour": 3600, "1Day": 86400, "1T": 60, "1H": 3600, "1D": 86400}


def msgpack_timestamp(epoch_ns: int) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_unix_nano(epoch_ns)


def trade_message(symbol: str, epoch_ns: int, price: float, size: float, trade_id: int, **extra: Any) -> dict:
    """A trade as Alpaca's stream sends it (stocks also carry x, c, z; crypto tks)."""
    message = {"T": "t", "S": symbol, "i": trade_id, "p": price, "s": size, "t": msgpack_timestamp(epoch_ns)}
    if "/" in symbol:
        message["tks"] = extra.pop("tks", "B")
    else:
        message.update(x=extra.pop("x", "V"), c=extra.pop("c", ["@"]), z=extra.pop("z", "C"))
    message.update(extra)
    return message


def cancel_message(
    symbol: str, epoch_ns: int, trade_id: int, price: float, size: float, action: str = "C", **extra: Any
) -> dict:
    """A trade cancel or error as Alpaca's stock stream sends it (``a``: C cancel, E error)."""
    return {
        "T": "x",
        "S": symbol,
        "i": trade_id,
        "x": extra.pop("x", "V"),
        "p": price,
        "s": size,
        "a": action,
        "z": extra.pop("z", "C"),
        "t": msgpack_timestamp(epoch_ns),
        **extra,
    }


def correction_message(
    symbol: str,
    epoch_ns: int,
    original_id: int,
    original_price: float,
    original_size: float,
    corrected_id: int,
    corrected_price: float,
    corrected_size: float,
    **extra: Any,
) -> dict:
    """A trade correction as Alpaca's stock stream sends it: the original ``oi op os oc``, the corrected
    ``ci cp cs cc``."""
    return {
        "T": "c",
        "S": symbol,
        "x": extra.pop("x", "V"),
        "oi": original_id,
        "op": original_price,
        "os": original_size,
        "oc": extra.pop("oc", ["@"]),
        "ci": corrected_id,
        "cp": corrected_price,
        "cs": corrected_size,
        "cc": extra.pop("cc", ["@"]),
        "z": extra.pop("z", "C"),
        "t": msgpack_timestamp(epoch_ns),
        **extra,
    }


def quote_message(
    symbol: str, epoch_ns: int, bid: float, ask: float, bid_size: float = 100, ask_size: float = 100, **extra: Any
) -> dict:
    """A quote as Alpaca's stream sends it (stocks carry exchanges, conditions and tape)."""
    message = {
        "T": "q",
        "S": symbol,
        "bp": bid,
        "bs": bid_size,
        "ap": ask,
        "as": ask_size,
        "t": msgpack_timestamp(epoch_ns),
    }
    if "/" not in symbol:
        message.update(bx=extra.pop("bx", "V"), ax=extra.pop("ax", "Q"), c=extra.pop("c", ["R"]), z=extra.pop("z", "C"))
    message.update(extra)
    return message


UPDATE_AFTER_NS = 30 * 10**9  # Alpaca recomputes a minute's bar 30 s after it ends when a late print came
MINUTE_NS = 60 * 10**9


def wire_message(record: Trade | TradeCancel | TradeCorrection | Quote) -> dict:
    """A simulator record as Alpaca's stream sends it (ids as integers when they are)."""

    def wire_id(text: str) -> int | str:
        return int(text) if text.isdigit() else text

    if isinstance(record, Trade):
        extra: dict[str, Any] = {"tks": record.taker_side} if record.taker_side else {}
        if record.exchange is not None:
            extra.update(x=record.exchange, c=list(record.conditions), z=record.tape)
        trade_id: Any = wire_id(record.trade_id)  # Alpaca sends ids as numbers, and as text where they are not
        return trade_message(record.symbol, record.timestamp_ns, record.price, record.size, trade_id, **extra)
    if isinstance(record, TradeCancel):
        return cancel_message(
            record.symbol,
            record.timestamp_ns,
            wire_id(record.trade_id),  # type: ignore[arg-type]
            record.price,
            record.size,
            record.action or "C",
            x=record.exchange,
            z=record.tape,
        )
    if isinstance(record, TradeCorrection):
        return correction_message(
            record.symbol,
            record.timestamp_ns,
            wire_id(record.original_trade_id),  # type: ignore[arg-type]
            record.original_price,
            record.original_size,
            wire_id(record.corrected_trade_id),  # type: ignore[arg-type]
            record.corrected_price,
            record.corrected_size,
            x=record.exchange,
            oc=list(record.original_conditions),
            cc=list(record.corrected_conditions),
            z=record.tape,
        )
    extra = {}
    if record.bid_exchange is not None:
        extra.update(bx=record.bid_exchange, ax=record.ask_exchange, c=list(record.conditions), z=record.tape)
    return quote_message(
        record.symbol,
        record.timestamp_ns,
        record.bid_price,
        record.ask_price,
        record.bid_size,
        record.ask_size,
        **extra,
    )


@dataclass
class MinuteBars:
    """Alpaca's minute bars of the trades sent so far, by its published rules (``alpaca_rules``), kept the way its
    stream sends them: ``due(clock)`` gives each minute's bar once the clock has passed the minute's end, and its
    update 30 s after that when a late print reached the minute in between."""

    trades: dict[tuple[str, int], list[tuple[int, int, Trade]]] = field(default_factory=lambda: defaultdict(list))
    sent: set[tuple[str, int]] = field(default_factory=set)
    changed: set[tuple[str, int]] = field(default_factory=set)  # minutes a late print reached after their bar
    received = 0

    def add(self, trade: Trade) -> None:
        key = (trade.symbol, trade.timestamp_ns - trade.timestamp_ns % MINUTE_NS)
        self.received += 1
        self.trades[key].append((trade.timestamp_ns, self.received, trade))
        if key in self.sent:
            self.changed.add(key)

    def due(self, clock_ns: int | None) -> list[dict]:
        """The bars (``b``) and updated bars (``u``) due at ``clock_ns`` (None: every one left, at the end)."""
        messages = []
        for key in sorted(self.trades):
            if key not in self.sent and (clock_ns is None or key[1] + MINUTE_NS <= clock_ns):
                self.sent.add(key)
                messages.append(self.bar(key, "b"))
        for key in sorted(self.changed):
            if clock_ns is None or key[1] + MINUTE_NS + UPDATE_AFTER_NS <= clock_ns:
                self.changed.discard(key)
                messages.append(self.bar(key, "u"))
        return [message for message in messages if message is not None]

    def bar(self, key: tuple[str, int], kind: str) -> dict | None:
        items = sorted(self.trades[key], key=lambda item: (item[0], item[1]))
        priced = [t for _, _, t in items if sets_price(t.conditions, t.tape)]
        counted = [t for _, _, t in items if counts_in_volume(t.conditions)]
        if not priced:
            return None  # Alpaca sends no bar for a minute without a trade that sets a price
        volume = sum(t.size for t in counted)
        return {
            "T": kind,
            "S": key[0],
            "o": priced[0].price,
            "h": max(t.price for t in priced),
            "l": min(t.price for t in priced),
            "c": priced[-1].price,
            "v": volume,
            "n": len(counted),
            "vw": sum(t.price * t.size for t in counted) / volume,
            "t": msgpack_timestamp(key[1]),
        }


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    feed: str
    authenticated: bool = False
    subscriptions: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


class FakeAlpaca:
    def __init__(
        self,
        api_key: str = "test-key",
        secret_key: str = "test-secret",
        max_symbols: int = 30,
        page_size: int = 100,
        seed: int = 1,
    ) -> None:
        self.api_key, self.secret_key = api_key, secret_key
        self.max_symbols = max_symbols
        self.page_size = page_size
        self.seed = seed
        self.rest_requests: list[tuple[str, dict[str, str]]] = []
        self.auth_failures = 0
        self.connections_accepted = 0
        self._connections: list[_Connection] = []
        self._fail_next: list[int | str | tuple[str, float]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> FakeAlpaca:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start_app())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-alpaca", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Alpaca server did not start")
        return self

    async def _start_app(self) -> None:
        app = web.Application()
        for path in (*STOCK_PATHS, CRYPTO_PATH):
            app.router.add_get(path, self._websocket)
        app.router.add_get("/v2/stocks/bars", self._stock_bars)
        app.router.add_get("/v1beta3/crypto/us/bars", self._crypto_bars)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._loop and self._runner:
            self.drop_connections()  # a client still connected must not hold the shutdown up
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)

    def __enter__(self) -> FakeAlpaca:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stock_stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v2/iex"

    @property
    def crypto_stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{CRYPTO_PATH}"

    def settings_env(self) -> dict[str, str]:
        """RAY_APP_* / ALPACA_* variables that point the platform at this server."""
        return {
            "ALPACA_API_KEY": self.api_key,
            "ALPACA_SECRET_KEY": self.secret_key,
            "RAY_APP_ALPACA__STOCK_STREAM_URL": self.stock_stream_url,
            "RAY_APP_ALPACA__CRYPTO_STREAM_URL": self.crypto_stream_url,
            "RAY_APP_ALPACA__DATA_URL": self.http_url,
        }

    def _call(self, coroutine: Any, timeout: float = 10) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # --- cues for tests ---------------------------------------------------------------------------------
    def subscribed(self, feed: str) -> set[str]:
        return {s for c in self._connections if c.feed == feed for s in c.subscriptions.get("trades", set())}

    def wait_subscribed(self, feed: str, symbols: Iterable[str], timeout: float = 30) -> None:
        wanted = set(symbols)
        deadline = datetime.now() + timedelta(seconds=timeout)
        while datetime.now() < deadline:
            if wanted <= self.subscribed(feed):
                return
            threading.Event().wait(0.05)
        raise TimeoutError(f"no {feed} client subscribed to {sorted(wanted)} within {timeout} s")

    def publish(self, feed: str, messages: list[dict], per_frame: int = 10, timeout: float = 10) -> int:
        """Send messages to the feed's subscribers, ``per_frame`` to a frame; returns frames sent."""
        return self._call(self._publish(feed, messages, per_frame), timeout)

    async def _publish(self, feed: str, messages: list[dict], per_frame: int) -> int:
        frames = 0
        for conn in list(self._connections):
            if conn.feed != feed or not conn.authenticated:
                continue
            wanted = [m for m in messages if self._wants(conn, m)]
            for i in range(0, len(wanted), per_frame):
                await conn.ws.send_bytes(msgpack.packb(wanted[i : i + per_frame]))
                frames += 1
        return frames

    @staticmethod
    def _wants(conn: _Connection, message: dict) -> bool:
        channel = {
            "t": "trades",
            "b": "bars",
            "u": "updatedBars",
            "d": "dailyBars",
            "q": "quotes",
            "x": "cancelErrors",
            "c": "corrections",
        }.get(message.get("T", ""), "")
        symbols = conn.subscriptions.get(channel, set())
        return "*" in symbols or message.get("S") in symbols or channel == ""

    def play(
        self, timeline: Iterable[tuple[int, Trade | TradeCancel | TradeCorrection | Quote]], per_frame: int = 50
    ) -> dict[str, list[dict]]:
        """Stream a session (``TradeSimulator.timeline``: when each record is sent, and the record) to the
        subscribers as Alpaca does, as fast as the sockets take it: each record as its message, and between them,
        by the session's clock, the minute bars and updated bars Alpaca would send (``MinuteBars``). Returns the
        messages sent per feed."""
        bars = MinuteBars()
        feeds: dict[str, list[dict]] = {"stocks": [], "crypto": []}

        def route(message: dict) -> None:
            feeds["crypto" if "/" in message["S"] else "stocks"].append(message)

        for sent_ns, record in timeline:
            for bar in bars.due(sent_ns):
                route(bar)
            if isinstance(record, Trade):
                bars.add(record)
            route(wire_message(record))
        for bar in bars.due(None):
            route(bar)
        for feed, messages in feeds.items():
            if messages:
                self.publish(feed, messages, per_frame, timeout=600)
        return feeds

    def publish_raw(self, feed: str, frame: bytes) -> None:
        async def send() -> None:
            for conn in list(self._connections):
                if conn.feed == feed and conn.authenticated:
                    await conn.ws.send_bytes(frame)

        self._call(send())

    def drop_connections(self) -> int:
        """Cut every websocket abruptly, as a network failure would; returns how many were cut."""

        async def drop() -> int:
            dropped = 0
            for conn in list(self._connections):
                transport = conn.ws._req.transport if conn.ws._req else None
                if transport:
                    transport.abort()
                    dropped += 1
            return dropped

        return self._call(drop())

    def fail_next(self, count: int, status: int = 429) -> None:
        self._fail_next.extend([status] * count)

    def stall_next(self, count: int, seconds: float) -> None:
        """The next ``count`` REST calls get no answer for ``seconds`` (a hung server or network)."""
        self._fail_next.extend([("stall", seconds)] * count)

    def reset_next(self, count: int) -> None:
        """The next ``count`` REST calls have their connection closed without an answer."""
        self._fail_next.extend(["reset"] * count)

    # --- websocket --------------------------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        feed = "crypto" if request.path == CRYPTO_PATH else "stocks"
        await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "connected"}]))
        conn = _Connection(ws=ws, feed=feed)
        try:
            async for message in ws:
                if message.type != WSMsgType.BINARY and message.type != WSMsgType.TEXT:
                    break
                data = message.data if message.type == WSMsgType.BINARY else message.data.encode()
                try:
                    action = msgpack.unpackb(data) if message.type == WSMsgType.BINARY else json.loads(data)
                except Exception:
                    await ws.send_bytes(msgpack.packb([{"T": "error", "code": 400, "msg": "invalid syntax"}]))
                    continue
                if not await self._handle(conn, action):
                    break
        finally:
            if conn in self._connections:
                self._connections.remove(conn)
        return ws

    async def _handle(self, conn: _Connection, action: dict) -> bool:
        ws = conn.ws
        kind = action.get("action")
        if kind == "auth":
            if action.get("key") != self.api_key or action.get("secret") != self.secret_key:
                self.auth_failures += 1
                await ws.send_bytes(msgpack.packb([{"T": "error", "code": 402, "msg": "auth failed"}]))
                await ws.close()
                return False
            if any(c.feed == conn.feed and c.authenticated for c in self._connections):
                await ws.send_bytes(msgpack.packb([{"T": "error", "code": 406, "msg": "connection limit exceeded"}]))
                await ws.close()
                return False
            conn.authenticated = True
            self._connections.append(conn)
            self.connections_accepted += 1
            await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
            return True
        if not conn.authenticated:
            await ws.send_bytes(msgpack.packb([{"T": "error", "code": 401, "msg": "not authenticated"}]))
            return True
        if kind in ("subscribe", "unsubscribe"):
            change = {ch: set(action.get(ch) or []) for ch in CHANNELS if action.get(ch)}
            if kind == "subscribe":
                merged = {ch: conn.subscriptions[ch] | change.get(ch, set()) for ch in CHANNELS}
                if conn.feed == "stocks" and len(set().union(*merged.values())) > self.max_symbols:
                    await ws.send_bytes(msgpack.packb([{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]))
                    return True
                for ch, symbols in merged.items():
                    conn.subscriptions[ch] = symbols
                if conn.feed == "stocks":  # Alpaca: a trades subscription brings the trades' cancels and corrections
                    for ch in ("cancelErrors", "corrections"):
                        conn.subscriptions[ch] = set(conn.subscriptions["trades"])
            else:
                for ch, symbols in change.items():
                    conn.subscriptions[ch] -= symbols
                if conn.feed == "stocks":
                    for ch in ("cancelErrors", "corrections"):
                        conn.subscriptions[ch] = set(conn.subscriptions["trades"])
            echo = {"T": "subscription", **{ch: sorted(conn.subscriptions.get(ch, set())) for ch in CHANNELS}}
            await ws.send_bytes(msgpack.packb([echo]))
            return True
        await ws.send_bytes(msgpack.packb([{"T": "error", "code": 400, "msg": "invalid syntax"}]))
        return True

    # --- REST bars --------------------------------------------------------------------------------------
    async def _stock_bars(self, request: web.Request) -> web.Response:
        if (request.headers.get("APCA-API-KEY-ID"), request.headers.get("APCA-API-SECRET-KEY")) != (
            self.api_key,
            self.secret_key,
        ):
            return web.json_response({"message": "forbidden."}, status=403)
        return await self._bars(request, crypto=False)

    async def _crypto_bars(self, request: web.Request) -> web.Response:
        return await self._bars(request, crypto=True)

    async def _bars(self, request: web.Request, crypto: bool) -> web.Response:
        params = dict(request.query)
        self.rest_requests.append((request.path, params))
        if self._fail_next:
            failure = self._fail_next.pop(0)
            if failure == "reset":
                if request.transport:
                    request.transport.abort()
                raise ConnectionResetError("reset on cue")
            if isinstance(failure, tuple):
                await asyncio.sleep(failure[1])
            else:
                return web.json_response({"message": "too many requests."}, status=int(failure))
        try:
            symbols = [s for s in params["symbols"].split(",") if s]
            step = _TIMEFRAME_SECONDS[params.get("timeframe", "1Hour")]
            start = _parse_time(params["start"])
            end = _parse_time(params["end"]) if params.get("end") else datetime.now(UTC)
        except (KeyError, ValueError) as exc:
            return web.json_response({"message": f"invalid request: {exc}"}, status=422)
        limit = min(int(params.get("limit") or 1000), self.page_size)
        offset = int(base64.urlsafe_b64decode(params["page_token"]).decode()) if params.get("page_token") else 0
        every = [(s, b) for s in symbols for b in self.bars_between(s, start, end, step, crypto)]
        page = every[offset : offset + limit]
        body: dict[str, Any] = {"bars": defaultdict(list)}
        for symbol, bar in page:
            body["bars"][symbol].append(bar)
        body["next_page_token"] = (
            base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if offset + limit < len(every) else None
        )
        return web.json_response(body)

    def bars_between(self, symbol: str, start: datetime, end: datetime, step: int, crypto: bool) -> list[dict]:
        """Deterministic bars (same symbol and time, same bar) on the timeframe grid in [start, end)."""
        first = math.ceil(start.timestamp() / step) * step
        bars = []
        t = first
        while t < end.timestamp():
            moment = datetime.fromtimestamp(t, tz=UTC)
            if crypto or (moment.weekday() < 5 and 13 <= moment.hour < 21):
                bars.append(self._bar(symbol, t, step))
            t += step
        return bars

    def _bar(self, symbol: str, t: int, step: int) -> dict:
        def unit(salt: str) -> float:
            digest = hashlib.sha256(f"{self.seed}:{symbol}:{t}:{salt}".encode()).digest()
            return int.from_bytes(digest[:8], "big") / 2**64

        base = (20 + (int(hashlib.md5(symbol.encode()).hexdigest(), 16) % 400)) * (1 + 0.05 * math.sin(t / 86400))
        o = base * (1 + 0.004 * (unit("o") - 0.5))
        c = base * (1 + 0.004 * (unit("c") - 0.5))
        h = max(o, c) * (1 + 0.002 * unit("h"))
        low = min(o, c) * (1 - 0.002 * unit("l"))
        v = round(1000 + 9000 * unit("v"), 4)
        return {
            "t": format_ns(t * 1_000_000_000)[:19] + "Z",
            "o": round(o, 4),
            "h": round(h, 4),
            "l": round(low, 4),
            "c": round(c, 4),
            "v": v,
            "n": int(10 + 90 * unit("n")),
            "vw": round((o + c + h + low) / 4, 4),
        }


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
