package io.github.raytrading.stream;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.regex.Pattern;

/**
 * The record rules: Kafka values of the trades (trades, cancels, corrections), quotes, bars and dead-letters
 * topics -> Elasticsearch bulk actions, or dead letters with the reason. spark_jobs/records.py documents the rules and the ids; this is where they run,
 * once per record, inside the Spark tasks (a UDF keeps each micro-batch's query plan small: a projection of
 * fifty checks written in Spark SQL cost most of a small batch in planning and code generation).
 */
final class Records {
  private Records() {}

  private static final Pattern DIGITS = Pattern.compile("[0-9]{1,19}");
  private static final Pattern COUNT = Pattern.compile("[0-9]{1,18}");
  private static final Pattern RFC3339 =
      Pattern.compile("(19[7-9][0-9]|2[01][0-9][0-9]|22[0-5][0-9])-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]"
          + ":[0-6][0-9](\\.[0-9]{1,9})?Z");
  static final String STAGE = "stream";

  /** A valid trade, typed. */
  static final class Trade {
    String symbol;
    double price;
    double size;
    String tradeId;
    String exchange;
    List<String> conditions;
    String tape;
    String takerSide;
    String source;
    long tsNanos;
    String tradingDay; // a stock trade's New York date; null for crypto
  }

  /** One bulk action: where it goes, its id, its JSON, how it is written ({@link Doc} says what each op does),
   * and the 1-minute bar it touches (symbol|start seconds) when the record says so. An update (a cancel or a
   * correction) also carries the Kafka record it came from (its dead letter's id) and, for a correction, the alias
   * document of its corrected id, which the sink writes once it has found the trade. */
  static final class Document {
    final String index;
    final String id;
    final String source;
    final String op;
    final Long version;
    final String barKey;
    String topic;
    Integer partition;
    Long offset;
    String aliasId;
    String aliasSource; // TradeAliasDocument without trade_doc_id

    Document(String index, String id, String source) {
      this(index, id, source, Doc.INDEX, null, null);
    }

    Document(String index, String id, String source, String op, Long version, String barKey) {
      this.index = index;
      this.id = id;
      this.source = source;
      this.op = op;
      this.version = version;
      this.barKey = barKey;
    }
  }

  /** symbol|minute start (seconds): the 1-minute bar an instant falls in. */
  static String barKey(String symbol, long tsNanos, RecordConfig c) {
    long seconds = Math.floorDiv(tsNanos, Json.NANOS);
    return symbol + c.separator + Math.floorDiv(seconds, 60) * 60;
  }

  static JsonNode object(byte[] value) throws Invalid {
    if (value == null || value.length == 0) {
      throw new Invalid("unparseable", value == null ? "no value (a Kafka tombstone)" : "empty value");
    }
    JsonNode node;
    try {
      node = Json.READER.readTree(value);
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      String why = e.getOriginalMessage();
      throw new Invalid("unparseable", "not valid JSON: " + Json.quote(why == null ? e.toString() : why, 200));
    } catch (IOException e) {
      throw new Invalid("unparseable", "not valid JSON: " + Json.quote(e.toString(), 200));
    }
    if (node == null || !node.isObject()) {
      throw new Invalid("unparseable", "not a JSON object");
    }
    return node;
  }

  private static void common(JsonNode rec, String kind, RecordConfig c) throws Invalid {
    String recordKind = Json.text(rec, "kind");
    if (recordKind != null && !recordKind.equals(kind)) {
      throw new Invalid("unknown_type", "kind '" + Json.quote(recordKind, c.quoteMax) + "' on a " + kind + " topic");
    }
    String version = Json.text(rec, "schema_version");
    if (version != null && !version.equals("1")) {
      throw Invalid.value("unsupported schema_version " + Json.quote(version, c.quoteMax));
    }
    String symbol = Json.text(rec, "symbol");
    if (symbol == null) {
      throw Invalid.missing("symbol");
    }
    if (symbol.isEmpty() || symbol.length() > c.symbolMaxLength) {
      throw Invalid.value("field 'symbol' must be 1-" + c.symbolMaxLength + " characters (got '"
          + Json.quote(symbol, c.quoteMax) + "')");
    }
    text(rec, "symbol", c.symbolMaxLength, true, c);
    text(rec, "source", c.sourceMaxLength, false, c);
  }

  /** An optional string field: a scalar, at most {@code max} characters, and no separator when in an id. */
  private static String text(JsonNode rec, String field, int max, boolean inId, RecordConfig c) throws Invalid {
    String value = Json.text(rec, field);
    if (value == null) {
      return null;
    }
    if (Json.structured(rec, field)) {
      throw Invalid.value("field '" + field + "' must be a string, not a JSON object or list (got "
          + Json.quote(value, c.quoteMax) + ")");
    }
    if (value.length() > max) {
      throw Invalid.value("field '" + field + "' must be at most " + max + " characters (got " + value.length() + ")");
    }
    if (inId && value.contains(c.separator)) {
      throw Invalid.value("field '" + field + "' may not contain '" + c.separator + "' (got "
          + Json.quote(value, c.quoteMax) + ")");
    }
    return value;
  }

  /**
   * The record's event time. "In the future" is measured from the time Kafka gave the record (``kafkaMs``), not
   * from the clock when a query happens to read it, so the verdict is the same in every query and on every replay.
   * A Kafka time that cannot be right (none, 0 or less, or ahead of the clock) falls back to the clock.
   */
  private static long eventTime(JsonNode rec, RecordConfig c, Long kafkaMs) throws Invalid {
    String nanos = Json.text(rec, "timestamp_ns");
    String stamp = Json.text(rec, "timestamp");
    if (nanos == null && stamp == null) {
      throw Invalid.missing("timestamp_ns' (or 'timestamp");
    }
    Long ts = null;
    if (nanos != null) {
      if (DIGITS.matcher(nanos).matches()) {
        try {
          ts = Long.parseLong(nanos);
        } catch (NumberFormatException e) {
          ts = null;
        }
      }
    } else {
      try {
        java.time.Instant instant = OffsetDateTime.parse(stamp).toInstant();
        ts = Math.addExact(Math.multiplyExact(instant.getEpochSecond(), Json.NANOS), instant.getNano());
      } catch (DateTimeParseException | ArithmeticException e) {
        ts = null;
      }
    }
    String given = Json.quote(nanos != null ? nanos : stamp, c.quoteMax);
    if (ts == null || ts <= 0) {
      throw Invalid.value("field 'timestamp_ns' must be positive integer nanoseconds since the epoch (got "
          + given + ")");
    }
    long clock = System.currentTimeMillis();
    long reference = kafkaMs != null && kafkaMs > 0 ? Math.min(kafkaMs, clock) : clock;
    if (ts / 1_000_000 > reference + c.maxFutureMs) {
      throw Invalid.value("timestamp is more than " + c.maxFutureMs / 1000 + " s after Kafka received the record (got "
          + given + ")");
    }
    return ts;
  }

  private static double number(JsonNode rec, String field, boolean positive, boolean required, RecordConfig c)
      throws Invalid {
    String raw = Json.text(rec, field);
    if (raw == null) {
      if (required) {
        throw Invalid.missing(field);
      }
      return Double.NaN;
    }
    Double value = Json.number(rec, field);
    if (value == null || (positive ? value <= 0 : value < 0)) {
      throw Invalid.value("field '" + field + "' must be " + (positive ? "a positive finite number" : "a finite number >= 0")
          + " (got " + Json.quote(raw, c.quoteMax) + ")");
    }
    return value;
  }

  /** A trade id field: present, not empty, at most trade_id_max_bytes, a string or a number. */
  private static String tradeIdField(JsonNode rec, String field, RecordConfig c) throws Invalid {
    String id = Json.text(rec, field);
    if (id == null) {
      throw Invalid.missing(field);
    }
    if (id.isEmpty()) {
      throw Invalid.value("field '" + field + "' is empty");
    }
    int bytes = Json.utf8Length(id);
    if (bytes > c.tradeIdMaxBytes) {
      throw Invalid.value("field '" + field + "' must be at most " + c.tradeIdMaxBytes + " bytes (got " + bytes + ")");
    }
    if (Json.structured(rec, field)) {
      throw Invalid.value("field '" + field + "' must be a string or a number, not a JSON object or list (got "
          + Json.quote(id, c.quoteMax) + ")");
    }
    return id;
  }

  /** An optional list of condition codes: at most max_conditions, each at most code_max_length characters. */
  private static List<String> conditions(JsonNode rec, String field, RecordConfig c) throws Invalid {
    JsonNode conditions = rec.get(field);
    if (conditions == null || conditions.isNull()) {
      return null;
    }
    String given = Json.quote(Json.text(rec, field), c.quoteMax);
    if (!conditions.isArray()) {
      throw Invalid.value("field '" + field + "' must be a list of strings (got " + given + ")");
    }
    if (conditions.size() > c.maxConditions) {
      throw Invalid.value("field '" + field + "' may hold at most " + c.maxConditions + " codes (got "
          + conditions.size() + ")");
    }
    List<String> codes = new ArrayList<>(conditions.size());
    for (JsonNode code : conditions) {
      if (!code.isValueNode() || code.isNull() || code.asText().length() > c.codeMaxLength) {
        throw Invalid.value("each of '" + field + "' must be a string of at most " + c.codeMaxLength
            + " characters (got " + given + ")");
      }
      codes.add(code.asText());
    }
    return codes;
  }

  static Trade trade(JsonNode rec, RecordConfig c, Long kafkaMs) throws Invalid {
    common(rec, "trade", c);
    Trade t = new Trade();
    t.tsNanos = eventTime(rec, c, kafkaMs);
    t.price = number(rec, "price", true, true, c);
    t.size = number(rec, "size", true, true, c);
    t.tradeId = tradeIdField(rec, "trade_id", c);
    t.symbol = Json.text(rec, "symbol");
    t.exchange = text(rec, "exchange", c.codeMaxLength, true, c);
    t.tape = text(rec, "tape", c.codeMaxLength, false, c);
    String side = Json.text(rec, "taker_side");
    if (side != null && !side.equals("B") && !side.equals("S")) {
      throw Invalid.value("field 'taker_side' must be B or S (got " + Json.quote(side, c.quoteMax) + ")");
    }
    t.takerSide = side;
    t.source = Json.text(rec, "source");
    t.conditions = conditions(rec, "conditions", c);
    t.tradingDay = tradingDay(t.symbol, t.tsNanos);
    return t;
  }

  /** The day a stock trade's id is unique within: the New York date of the record's own time (a trade's execution
   * time; a cancel's or a correction's sending time: venues send them the same day). Crypto ids are unique per
   * symbol: null. */
  static String tradingDay(String symbol, long tsNanos) {
    return symbol.contains("/") ? null : Json.tradingDay(tsNanos);
  }

  /** A stock trade's document id symbol|exchange|trading day|trade_id (a venue numbers each day's trades afresh),
   * a crypto trade's symbol|exchange|trade_id; the trade id as sha256:<hex> when the whole would pass 512 bytes. */
  static String tradeId(Trade t, RecordConfig c) {
    return tradeId(t.symbol, t.exchange, t.tradingDay, t.tradeId, c);
  }

  static String tradeId(String symbol, String exchange, String day, String tradeId, RecordConfig c) {
    String head = symbol + c.separator + (exchange == null ? "" : exchange) + c.separator
        + (day == null ? "" : day + c.separator);
    String natural = head + tradeId;
    if (Json.utf8Length(natural) <= c.esIdMaxBytes) {
      return natural;
    }
    return head + "sha256:" + Json.sha256(tradeId.getBytes(StandardCharsets.UTF_8));
  }

  // an update answers with the trade's symbol and time: the 1-minute bar it changed
  static final String UPDATE_RETURNS = ",\"_source\":[\"symbol\",\"timestamp_ns\"]}";

  /** A cancel (or error) of a trade -> an update that marks the trade cancelled; the trade stays, its bars no
   * longer count it. The trade is looked up on the cancel's trading day, by its id or an id a correction gave it. */
  static Document cancelDocument(JsonNode rec, RecordConfig c, Long kafkaMs) throws Invalid {
    common(rec, "cancel", c);
    long ts = eventTime(rec, c, kafkaMs);
    number(rec, "price", true, true, c);
    number(rec, "size", true, true, c);
    String id = tradeIdField(rec, "trade_id", c);
    String exchange = text(rec, "exchange", c.codeMaxLength, true, c);
    String action = text(rec, "action", c.codeMaxLength, false, c);
    text(rec, "tape", c.codeMaxLength, false, c);
    String symbol = Json.text(rec, "symbol");
    Json.Doc fields = new Json.Doc().put("cancelled", true).put("cancelled_at", Json.formatNanos(ts))
        .put("cancel_action", action == null ? "C" : action);
    return new Document(c.tradesIndex, tradeId(symbol, exchange, tradingDay(symbol, ts), id, c),
        "{\"doc\":" + fields.json() + UPDATE_RETURNS, Doc.UPDATE, null, null);
  }

  /** A correction -> an update that puts the corrected price, size and conditions in place (the sink adds the
   * values the trade had before its first correction as original_*, and the ids of every correction, from the trade
   * as it finds it: {@link BulkClient}), and the alias of the corrected id, so that a cancel or a correction naming
   * it finds the trade. The trade is looked up like a cancel's: by the original id on the correction's trading
   * day, or an id an earlier correction gave it. */
  static Document correctionDocument(JsonNode rec, RecordConfig c, Long kafkaMs) throws Invalid {
    common(rec, "correction", c);
    long ts = eventTime(rec, c, kafkaMs);
    String original = tradeIdField(rec, "original_trade_id", c);
    String corrected = tradeIdField(rec, "corrected_trade_id", c);
    number(rec, "original_price", true, true, c);
    number(rec, "original_size", true, true, c);
    double price = number(rec, "corrected_price", true, true, c);
    double size = number(rec, "corrected_size", true, true, c);
    conditions(rec, "original_conditions", c);
    List<String> correctedConditions = conditions(rec, "corrected_conditions", c);
    String exchange = text(rec, "exchange", c.codeMaxLength, true, c);
    text(rec, "tape", c.codeMaxLength, false, c);
    String symbol = Json.text(rec, "symbol");
    String day = tradingDay(symbol, ts);
    String at = Json.formatNanos(ts);
    Json.Doc correction = new Json.Doc().put("price", price).put("size", size).put("notional", price * size)
        .put("conditions", correctedConditions == null ? new ArrayList<String>() : correctedConditions)
        .put("corrected_at", at).put("corrected_trade_id", corrected);
    Document doc = new Document(c.tradesIndex, tradeId(symbol, exchange, day, original, c),
        "{\"" + BulkClient.CORRECTION + "\":" + correction.json() + UPDATE_RETURNS, Doc.UPDATE, null, null);
    doc.aliasId = tradeId(symbol, exchange, day, corrected, c);
    doc.aliasSource = new Json.Doc().put("symbol", symbol).put("exchange", exchange).put("trading_day", day)
        .put("trade_id", corrected).put("created_at", at).json();
    return doc;
  }

  /** A quote -> the top of the book of its symbol and second; of several in one second the latest stays
   * (external versioning by the quote's time, so a replay or a late older quote never overwrites it). */
  static Document quoteDocument(JsonNode rec, int partition, long offset, RecordConfig c, Long kafkaMs)
      throws Invalid {
    common(rec, "quote", c);
    long ts = eventTime(rec, c, kafkaMs);
    double bid = number(rec, "bid_price", false, true, c);
    double ask = number(rec, "ask_price", false, true, c);
    double bidSize = number(rec, "bid_size", false, true, c);
    double askSize = number(rec, "ask_size", false, true, c);
    if (bid > 0 && ask > 0 && ask < bid) {
      throw Invalid.value("the book is crossed: ask " + Json.text(rec, "ask_price") + " below bid "
          + Json.text(rec, "bid_price"));
    }
    String symbol = Json.text(rec, "symbol");
    long second = Math.floorDiv(ts, Json.NANOS);
    boolean twoSided = bid > 0 && ask > 0;
    Json.Doc doc = new Json.Doc()
        .put("symbol", symbol).put("timestamp", Json.formatSeconds(second)).put("quoted_at", Json.formatNanos(ts))
        .put("quoted_ns", ts).put("bid_price", bid).put("bid_size", bidSize)
        .put("bid_exchange", text(rec, "bid_exchange", c.codeMaxLength, false, c))
        .put("ask_price", ask).put("ask_size", askSize)
        .put("ask_exchange", text(rec, "ask_exchange", c.codeMaxLength, false, c))
        .put("spread", twoSided ? ask - bid : null).put("mid", twoSided ? (ask + bid) / 2 : null)
        .put("conditions", conditions(rec, "conditions", c)).put("tape", text(rec, "tape", c.codeMaxLength, false, c))
        .put("source", Json.text(rec, "source")).put("kafka_partition", (long) partition).put("kafka_offset", offset);
    return new Document(c.quotesIndex, symbol + c.separator + Json.formatSeconds(second), doc.json(), Doc.INDEX, ts,
        barKey(symbol, ts, c));
  }

  static Document tradeDocument(Trade t, int partition, long offset, Long kafkaMs, RecordConfig c) {
    Json.Doc doc = new Json.Doc()
        .put("symbol", t.symbol).put("price", t.price).put("size", t.size).put("notional", t.price * t.size)
        .put("trade_id", t.tradeId).put("trading_day", t.tradingDay)
        .put("exchange", t.exchange).put("conditions", t.conditions).put("tape", t.tape)
        .put("taker_side", t.takerSide).put("source", t.source).put("timestamp", Json.formatNanos(t.tsNanos))
        .put("timestamp_ns", t.tsNanos).put("schema_version", 1L)
        .put("ingested_at", kafkaNanos(kafkaMs) == null ? null : Json.formatNanos(kafkaNanos(kafkaMs)))
        .put("kafka_partition", (long) partition).put("kafka_offset", offset);
    return new Document(c.tradesIndex, tradeId(t, c), doc.json(), Doc.CREATE, null, barKey(t.symbol, t.tsNanos, c));
  }

  static Document barDocument(JsonNode rec, RecordConfig c, Long kafkaMs) throws Invalid {
    common(rec, "bar", c);
    long ts = eventTime(rec, c, kafkaMs);
    String timeframe = Json.text(rec, "timeframe");
    if (timeframe == null) {
      throw Invalid.missing("timeframe");
    }
    String index = timeframe.equals("1Min") ? c.vendorBars1mIndex : timeframe.equals("1Hour") ? c.vendorBars1hIndex
        : null;
    if (index == null) {
      throw Invalid.value("field 'timeframe' must be one of ['1Hour', '1Min'] (got " + Json.quote(timeframe, c.quoteMax)
          + ")");
    }
    double o = number(rec, "open", true, true, c);
    double h = number(rec, "high", true, true, c);
    double l = number(rec, "low", true, true, c);
    double cl = number(rec, "close", true, true, c);
    double v = number(rec, "volume", false, true, c);
    double vwap = number(rec, "vwap", true, false, c);
    String count = Json.text(rec, "trade_count");
    if (count != null && !COUNT.matcher(count).matches()) {
      throw Invalid.value("field 'trade_count' must be an integer >= 0 (got " + Json.quote(count, c.quoteMax) + ")");
    }
    if (!(l <= Math.min(o, cl) && Math.max(o, cl) <= h)) {
      throw Invalid.value("low <= open, close <= high does not hold (o=" + Json.text(rec, "open") + " h="
          + Json.text(rec, "high") + " l=" + Json.text(rec, "low") + " c=" + Json.text(rec, "close") + ")");
    }
    String symbol = Json.text(rec, "symbol");
    long start = Math.floorDiv(ts, Json.NANOS);
    String source = Json.text(rec, "source");
    Long ingested = kafkaNanos(kafkaMs);
    Json.Doc doc = new Json.Doc()
        .put("symbol", symbol).put("timeframe", timeframe).put("timestamp", Json.formatSeconds(start))
        .put("open", o).put("high", h).put("low", l).put("close", cl).put("volume", v)
        .put("trade_count", count == null ? null : Long.parseLong(count))
        .put("vwap", Double.isNaN(vwap) ? null : vwap).put("range", h - l)
        .put("notional", Double.isNaN(vwap) ? cl * v : vwap * v)
        .put("log_return", Math.log(cl / o)).put("source", source == null ? "alpaca-rest" : source)
        .put("updated_at", Json.formatSeconds(System.currentTimeMillis() / 1000))
        .put("updated", "true".equals(Json.text(rec, "updated")))
        .put("ingested_at", ingested == null ? null : Json.formatNanos(ingested));
    return new Document(index, symbol + c.separator + Json.formatSeconds(start), doc.json());
  }

  // --- dead letters ---------------------------------------------------------------------------------------

  static Long kafkaNanos(Long kafkaMs) {
    return kafkaMs != null && kafkaMs >= 0 && kafkaMs < Json.MAX_DATE_NANOS_MS ? kafkaMs * 1_000_000 : null;
  }

  private static String kafkaOrNow(Long kafkaMs) {
    Long nanos = kafkaNanos(kafkaMs);
    return Json.formatSeconds(nanos != null ? nanos / Json.NANOS : System.currentTimeMillis() / 1000);
  }

  /** The raw payload: UTF-8 text when it is valid UTF-8, else base64, cut to raw_max_bytes, with the full
   * length and the SHA-256 of the original bytes. */
  private static Json.Doc raw(Json.Doc doc, byte[] value, RecordConfig c) {
    byte[] bytes = value == null ? new byte[0] : value;
    int keep = Math.min(bytes.length, c.rawMaxBytes);
    String text = utf8(bytes);
    String raw;
    String encoding;
    if (text != null) {
      raw = new String(bytes, 0, keep, StandardCharsets.UTF_8); // a sequence cut in two becomes U+FFFD
      encoding = "utf-8";
    } else {
      raw = Base64.getEncoder().encodeToString(java.util.Arrays.copyOf(bytes, keep));
      encoding = "base64";
    }
    return doc.put("raw", raw).put("raw_encoding", encoding).put("raw_bytes", (long) bytes.length)
        .put("raw_sha256", Json.sha256(bytes)).put("raw_truncated", bytes.length > c.rawMaxBytes);
  }

  private static String utf8(byte[] bytes) {
    try {
      return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
    } catch (CharacterCodingException e) {
      return null;
    }
  }

  static String kafkaId(String topic, int partition, long offset, RecordConfig c) {
    return topic + c.separator + partition + c.separator + offset;
  }

  /** A record that broke a rule -> its dead letter, the raw payload as it came. */
  static Document deadLetter(Invalid why, String intended, String topic, int partition, long offset, Long kafkaMs,
      byte[] value, RecordConfig c) {
    Json.Doc doc = new Json.Doc().put("schema_version", 1L).put("stage", STAGE).put("reason", why.reason)
        .put("detail", Json.cut(why.detail, c.detailMax));
    raw(doc, value, c)
        .put("topic", topic).put("partition", (long) partition).put("offset", offset)
        .put("intended_index", intended).put("timestamp", kafkaOrNow(kafkaMs))
        .put("received_at", Json.formatSeconds(System.currentTimeMillis() / 1000));
    return new Document(c.deadLettersIndex, kafkaId(topic, partition, offset, c), doc.json());
  }

  /** An ingest-stage dead letter -> the same index; its fields cut to size, never refused. One that is itself
   * unreadable is kept raw. */
  static Document upstreamDeadLetter(String topic, int partition, long offset, Long kafkaMs, byte[] value,
      RecordConfig c) {
    JsonNode rec = null;
    try {
      rec = object(value);
    } catch (Invalid e) {
      rec = null;
    }
    boolean readable = rec != null && Json.text(rec, "reason") != null;
    Json.Doc doc = new Json.Doc().put("schema_version", 1L);
    if (!readable) {
      doc.put("stage", "ingest").put("reason", "unparseable").put("detail", "dead letter that is not a JSON object");
      raw(doc, value, c);
    } else {
      String stage = Json.text(rec, "stage");
      doc.put("stage", stage == null ? "ingest" : Json.cut(stage, c.textMax))
          .put("reason", Json.cut(Json.text(rec, "reason"), c.textMax))
          .put("detail", Json.cut(Json.text(rec, "detail"), c.detailMax));
      String upstreamRaw = Json.text(rec, "raw");
      if (upstreamRaw == null) {
        raw(doc, value, c);
      } else {
        boolean base64 = "base64".equals(Json.text(rec, "raw_encoding"));
        byte[] payload;
        try {
          payload = base64 ? Base64.getDecoder().decode(upstreamRaw) : upstreamRaw.getBytes(StandardCharsets.UTF_8);
        } catch (IllegalArgumentException e) {
          payload = upstreamRaw.getBytes(StandardCharsets.UTF_8);
        }
        doc.put("raw", Json.cut(upstreamRaw, c.rawMaxBytes)).put("raw_encoding", base64 ? "base64" : "utf-8")
            .put("raw_bytes", (long) payload.length).put("raw_sha256", Json.sha256(payload))
            .put("raw_truncated", upstreamRaw.length() > c.rawMaxBytes);
      }
      doc.put("source", Json.cut(Json.text(rec, "source"), c.textMax))
          .put("intended_topic", Json.cut(Json.text(rec, "intended_topic"), c.textMax));
    }
    doc.put("topic", topic).put("partition", (long) partition).put("offset", offset)
        .put("timestamp", kafkaOrNow(kafkaMs));
    String received = readable ? Json.text(rec, "received_at") : null;
    doc.put("received_at", received != null && RFC3339.matcher(received).matches() ? received : kafkaOrNow(kafkaMs));
    return new Document(c.deadLettersIndex, kafkaId(topic, partition, offset, c), doc.json());
  }

  private static Document located(Document doc, String topic, int partition, long offset) {
    doc.topic = topic;
    doc.partition = partition;
    doc.offset = offset;
    return doc;
  }

  /** Any record of the four topics -> its action: a trade, a cancel or correction of one, a quote, a bar, or a
   * dead letter. The trades topic holds trades (kind "trade", or none) and their cancels and corrections. */
  static Document document(String topic, int partition, long offset, Long kafkaMs, byte[] value, RecordConfig c) {
    if (topic.equals(c.deadLettersTopic)) {
      return upstreamDeadLetter(topic, partition, offset, kafkaMs, value, c);
    }
    boolean trades = topic.equals(c.tradesTopic);
    boolean quotes = topic.equals(c.quotesTopic);
    try {
      JsonNode rec = object(value);
      if (trades) {
        String kind = Json.structured(rec, "kind") ? null : Json.text(rec, "kind");
        if ("cancel".equals(kind)) {
          return located(cancelDocument(rec, c, kafkaMs), topic, partition, offset);
        }
        if ("correction".equals(kind)) {
          return located(correctionDocument(rec, c, kafkaMs), topic, partition, offset);
        }
        return tradeDocument(trade(rec, c, kafkaMs), partition, offset, kafkaMs, c);
      }
      if (quotes) {
        return quoteDocument(rec, partition, offset, c, kafkaMs);
      }
      return barDocument(rec, c, kafkaMs);
    } catch (Invalid why) {
      String intended = trades ? c.tradesIndex : quotes ? c.quotesIndex : "vendor-bars";
      return deadLetter(why, intended, topic, partition, offset, kafkaMs, value, c);
    }
  }
}
