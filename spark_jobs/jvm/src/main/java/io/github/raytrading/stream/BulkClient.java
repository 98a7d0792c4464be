package io.github.raytrading.stream;

import com.fasterxml.jackson.core.io.JsonStringEncoder;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * Bulk-indexes documents into Elasticsearch so that no document, however bad, can stop the others.
 *
 * <ul>
 *   <li>Documents go out in requests of at most {@code batch_entries} documents and {@code batch_bytes} bytes (a
 *       document bigger than that goes alone), up to {@code max_in_flight} at a time.
 *   <li>A whole request Elasticsearch refuses (HTTP 400, e.g. one id over 512 bytes, or 413, too large) is split
 *       in halves until the refused documents stand alone: each becomes a {@link WriteReport.Rejection} with
 *       Elasticsearch's reason; the rest is indexed.
 *   <li>An item refused for good (a mapping conflict, an immense term) is a rejection too.
 *   <li>Transient trouble is retried with exponential backoff, never turned into a rejection: a connection error
 *       or a whole request answered 429/502/503/504, and items answered 429 or 5xx. When it outlasts {@code
 *       retry_count} retries, {@link BulkWriteFailed} fails the batch, which Spark then replays.
 *   <li>A 409 for a {@code create} (the trade is there already) or a versioned {@code index} (a newer quote is
 *       there) is the action done, not a refusal; a 404 for a {@code delete} too (nothing to delete).
 *   <li>Two actions on one document reach Elasticsearch in the order they were read (Kafka's): an action whose
 *       document has an earlier action in a request still out waits for that request, and a transient failure
 *       retried is retried with every later action on its document.
 *   <li>Updates (cancels, corrections) go last, after everything else of the task is written, one request at a
 *       time and in their order: a cancel in the same micro-batch as its trade finds it, and two corrections of
 *       one trade apply in the order the venue sent them. Each is sent to its trade, found first (a real-time
 *       multi-get) by its own id or by the alias an earlier correction wrote for the id it gave the trade; a
 *       correction writes the alias of its own corrected id in the same request. An update whose trade is not
 *       there (a cancel of a trade never seen) becomes a dead letter ({@code unknown_trade}).
 * </ul>
 */
final class BulkClient {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Map<String, HttpClient> CLIENTS = new ConcurrentHashMap<>();
  private static final String BULK_PATH =
      "/_bulk?filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason,"
          + "items.*.error.caused_by.type,items.*.error.caused_by.reason,items.*.get._source";
  private static final int REASON_LIMIT = 1000;

  private final SinkConfig config;
  private final HttpClient http;
  private final URI bulkUri;
  private final URI mgetUri;

  BulkClient(SinkConfig config) {
    this.config = config;
    this.http = CLIENTS.computeIfAbsent(config.clientKey(), key -> newClient(config));
    this.bulkUri = URI.create(config.baseUrl + BULK_PATH);
    this.mgetUri = URI.create(config.baseUrl + "/_mget?realtime=true&filter_path=docs.found,docs.error,"
        + "docs._source");
  }

  /** A bulk request sent and not answered yet. */
  private static final class InFlight {
    final List<Doc> docs;
    final long began;
    final CompletableFuture<HttpResponse<byte[]>> answer;

    InFlight(List<Doc> docs, CompletableFuture<HttpResponse<byte[]>> answer) {
      this.docs = docs;
      this.began = System.nanoTime();
      this.answer = answer;
    }
  }

  /** The keys of the documents in requests still out. */
  private static final class Flying {
    final ArrayDeque<InFlight> requests = new ArrayDeque<>();
    final java.util.Set<String> keys = new java.util.HashSet<>();

    void add(InFlight request) {
      requests.add(request);
      for (Doc doc : request.docs) {
        keys.add(doc.key());
      }
    }

    InFlight poll() {
      InFlight request = requests.poll();
      for (Doc doc : request.docs) {
        keys.remove(doc.key());
      }
      return request;
    }
  }

  /** Index every document of the iterator; the report says what was indexed and what was refused. Up to
   * {@code max_in_flight} requests are out at once, so reading and encoding the next documents overlaps
   * Elasticsearch's work on the last ones. */
  WriteReport write(Iterator<Doc> docs) {
    long began = System.nanoTime();
    WriteReport report = new WriteReport();
    Flying flying = new Flying();
    List<Doc> pending = new ArrayList<>();
    List<Doc> updates = new ArrayList<>();
    long size = 0;
    while (docs.hasNext()) {
      Doc doc = docs.next();
      report.documents++;
      if (doc.op.equals(Doc.UPDATE)) {
        updates.add(doc);
        continue;
      }
      if (flying.keys.contains(doc.key())) { // an earlier action on this document is out: it lands first
        while (!flying.requests.isEmpty()) {
          settle(flying.poll(), report);
        }
      }
      if (!pending.isEmpty() && (pending.size() >= config.batchEntries || size + doc.size() > config.batchBytes)) {
        flying.add(send(pending, report));
        while (flying.requests.size() >= config.maxInFlight) {
          settle(flying.poll(), report);
        }
        pending = new ArrayList<>();
        size = 0;
      }
      pending.add(doc);
      size += doc.size();
    }
    if (!pending.isEmpty()) {
      flying.add(send(pending, report));
    }
    while (!flying.requests.isEmpty()) {
      settle(flying.poll(), report);
    }
    applyUpdates(updates, report);
    deadLetter(report);
    report.tasks = 1;
    report.taskNanos = System.nanoTime() - began;
    return report;
  }

  /** A trade as the updates of this task find it: whether it has its first values in original_* already, the ids
   * its corrections gave it, and its current price, size and conditions. */
  private static final class TradeState {
    boolean hasOriginals;
    final List<String> correctedIds = new ArrayList<>();
    JsonNode price;
    JsonNode size;
    JsonNode conditions;

    static TradeState of(JsonNode source) {
      TradeState state = new TradeState();
      state.hasOriginals = source.hasNonNull("original_price");
      source.path("corrected_trade_ids").forEach(id -> state.correctedIds.add(id.asText()));
      state.price = source.path("price");
      state.size = source.path("size");
      state.conditions = source.path("conditions");
      return state;
    }
  }

  /** Cancels and corrections, in their order: each sent to the trade it names (by its id, or by an id a correction
   * gave the trade), a correction with the alias of its corrected id; a trade not found -> unknown_trade. A
   * correction's update is made here, from the trade as found: the first correction keeps the trade's values in
   * original_*, every one appends its id to corrected_trade_ids (a replay finds both there and adds nothing). */
  private void applyUpdates(List<Doc> updates, WriteReport report) {
    Map<String, TradeState> trades = new java.util.HashMap<>(); // trades found in this task, by document id
    Map<String, String> aliases = new java.util.HashMap<>(); // alias ids met in this task -> their trade
    for (int i = 0; i < updates.size(); i += config.batchEntries) {
      List<Doc> chunk = updates.subList(i, Math.min(i + config.batchEntries, updates.size()));
      String index = chunk.get(0).index;
      List<String> unknown = new ArrayList<>();
      for (Doc doc : chunk) {
        if (!trades.containsKey(doc.id) && !aliases.containsKey(doc.id) && !unknown.contains(doc.id)) {
          unknown.add(doc.id);
        }
      }
      lookup(index, unknown, trades, aliases, report);
      List<Doc> resolved = new ArrayList<>();
      for (Doc doc : chunk) {
        String target = trades.containsKey(doc.id) ? doc.id : aliases.get(doc.id);
        if (target == null || !trades.containsKey(target)) {
          report.rejected.add(new WriteReport.Rejection(doc, 404, "document_missing_exception",
              "no trade " + doc.id + " and no correction that gave a trade this id"));
          continue;
        }
        Doc update = correction(doc, trades.get(target));
        resolved.add(update.id.equals(target) ? update : update.withId(target));
        if (doc.aliasId != null && doc.aliasSource != null) {
          aliases.put(doc.aliasId, target);
          resolved.add(new Doc(config.tradeAliasesIndex, doc.aliasId, withTarget(doc.aliasSource, target)));
        }
      }
      if (!resolved.isEmpty()) {
        flush(resolved, report);
      }
    }
  }

  static final String CORRECTION = "correction";

  /** A correction's update from the trade as it stands (and the state updated as if applied); any other update
   * as it is. */
  private static Doc correction(Doc doc, TradeState trade) {
    JsonNode body;
    try {
      body = JSON.readTree(doc.source);
    } catch (IOException e) {
      return doc;
    }
    JsonNode corrected = body.path(CORRECTION);
    if (!corrected.isObject()) {
      return doc;
    }
    String id = corrected.path("corrected_trade_id").asText();
    com.fasterxml.jackson.databind.node.ObjectNode fields = ((com.fasterxml.jackson.databind.node.ObjectNode) corrected)
        .deepCopy();
    fields.put("corrected", true);
    if (!trade.hasOriginals) {
      fields.set("original_price", trade.price);
      fields.set("original_size", trade.size);
      fields.set("original_conditions", trade.conditions.isArray() ? trade.conditions : JSON.createArrayNode());
      trade.hasOriginals = true;
    }
    if (!trade.correctedIds.contains(id)) {
      trade.correctedIds.add(id);
    }
    com.fasterxml.jackson.databind.node.ArrayNode ids = fields.putArray("corrected_trade_ids");
    trade.correctedIds.forEach(ids::add);
    trade.price = corrected.path("price");
    trade.size = corrected.path("size");
    trade.conditions = corrected.path("conditions");
    return new Doc(doc.index, doc.id, "{\"doc\":" + fields + Records.UPDATE_RETURNS, doc.op, doc.version, doc.barKey,
        doc.topic, doc.partition, doc.offset, doc.aliasId, doc.aliasSource);
  }

  private static String withTarget(String aliasSource, String target) {
    String quoted = new String(JsonStringEncoder.getInstance().quoteAsUTF8(target), StandardCharsets.UTF_8);
    return aliasSource.substring(0, aliasSource.length() - 1) + ",\"trade_doc_id\":\"" + quoted + "\"}";
  }

  /** Find {@code ids} in real time (no refresh needed): a trade by that id goes into {@code trades} with its state;
   * an alias by that id into {@code aliases}, and then its trade into {@code trades}. An id naming neither is left
   * out. */
  private void lookup(String tradesIndex, List<String> ids, Map<String, TradeState> trades,
      Map<String, String> aliases, WriteReport report) {
    if (ids.isEmpty()) {
      return;
    }
    JsonNode docs = mget(ids, tradesIndex, true, report);
    List<String> targets = new ArrayList<>();
    for (int i = 0; i < ids.size(); i++) {
      JsonNode trade = docs.path(2 * i);
      JsonNode alias = docs.path(2 * i + 1);
      if (trade.path("found").asBoolean(false)) {
        trades.put(ids.get(i), TradeState.of(trade.path("_source")));
      } else if (alias.path("found").asBoolean(false) && alias.path("_source").path("trade_doc_id").isTextual()) {
        String target = alias.path("_source").path("trade_doc_id").asText();
        aliases.put(ids.get(i), target);
        if (!trades.containsKey(target) && !targets.contains(target)) {
          targets.add(target);
        }
      }
    }
    if (targets.isEmpty()) {
      return;
    }
    JsonNode found = mget(targets, tradesIndex, false, report);
    for (int i = 0; i < targets.size(); i++) {
      JsonNode trade = found.path(i);
      if (trade.path("found").asBoolean(false)) {
        trades.put(targets.get(i), TradeState.of(trade.path("_source")));
      }
    }
  }

  private static final String TRADE_FIELDS =
      "[\"original_price\",\"price\",\"size\",\"conditions\",\"corrected_trade_ids\"]";

  /** A real-time multi-get of trades by id (and, with {@code aliases}, of the alias of each id after it); every item
   * read, or the batch fails. */
  private JsonNode mget(List<String> ids, String tradesIndex, boolean aliases, WriteReport report) {
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    JsonStringEncoder encoder = JsonStringEncoder.getInstance();
    write(body, "{\"docs\":[".getBytes(StandardCharsets.UTF_8));
    for (int i = 0; i < ids.size(); i++) {
      byte[] id = encoder.quoteAsUTF8(ids.get(i));
      write(body, ((i == 0 ? "" : ",") + "{\"_index\":\"" + tradesIndex + "\",\"_source\":" + TRADE_FIELDS
          + ",\"_id\":\"").getBytes(StandardCharsets.UTF_8));
      write(body, id);
      write(body, "\"}".getBytes(StandardCharsets.UTF_8));
      if (aliases) {
        write(body, (",{\"_index\":\"" + config.tradeAliasesIndex + "\",\"_source\":[\"trade_doc_id\"],\"_id\":\"")
            .getBytes(StandardCharsets.UTF_8));
        write(body, id);
        write(body, "\"}".getBytes(StandardCharsets.UTF_8));
      }
    }
    write(body, "]}".getBytes(StandardCharsets.UTF_8));
    Response response = post(mgetUri, body.toByteArray(), report, 1);
    if (response.status >= 300) {
      String[] why = requestError(response);
      throw new BulkWriteFailed("Elasticsearch at " + config.baseUrl + " refused a multi-get of "
          + ids.size() + " trades: HTTP " + response.status + " " + why[0] + ": " + why[1], null);
    }
    JsonNode docs = parse(response.body).path("docs");
    for (JsonNode doc : docs) {
      JsonNode error = doc.path("error");
      if (error.isObject() && !"index_not_found_exception".equals(error.path("type").asText())) {
        throw new BulkWriteFailed("Elasticsearch could not read a trade (" + error.path("type").asText() + ": "
            + error.path("reason").asText() + "); the batch is replayed", null);
      }
    }
    return docs;
  }

  /** Refused documents -> dead letters, in this task. One refused too is written again without its raw
   * document; one refused even so is logged and counted: writing a dead letter never fails the batch. */
  private void deadLetter(WriteReport report) {
    if (report.rejected.isEmpty()) {
      return;
    }
    List<WriteReport.Rejection> refused = new ArrayList<>(report.rejected);
    report.rejected.clear();
    report.rejectedCount += refused.size();
    Map<String, WriteReport.Rejection> byId = new java.util.HashMap<>();
    List<Doc> letters = new ArrayList<>();
    for (WriteReport.Rejection r : refused) {
      report.sample(r);
      Doc letter = DeadLetters.of(r, config, false);
      byId.put(letter.id, r);
      letters.add(letter);
    }
    for (boolean minimal : new boolean[] {false, true}) {
      WriteReport written = new WriteReport();
      for (int i = 0; i < letters.size(); i += config.batchEntries) {
        flush(new ArrayList<>(letters.subList(i, Math.min(i + config.batchEntries, letters.size()))), written);
      }
      List<WriteReport.Rejection> again = new ArrayList<>(written.rejected);
      written.rejected.clear();
      report.add(written);
      if (again.isEmpty()) {
        return;
      }
      letters = new ArrayList<>();
      for (WriteReport.Rejection letter : again) {
        if (minimal) {
          report.lostDeadLetters++;
          System.err.println("ray-app sink: dead letter " + letter.docId + " refused too (" + letter.type + ": "
              + letter.reason + "); the refused document was: " + Json.cut(byId.get(letter.docId).source, 2000));
        } else {
          letters.add(DeadLetters.of(byId.get(letter.docId), config, true));
        }
      }
    }
  }

  private InFlight send(List<Doc> docs, WriteReport report) {
    byte[] body = body(docs);
    HttpRequest request = request(body);
    report.requests++;
    report.bytes += body.length;
    return new InFlight(docs, http.sendAsync(request, HttpResponse.BodyHandlers.ofByteArray()));
  }

  /** Wait for a request sent ahead; all indexed is the common case, anything else goes the careful way. */
  private void settle(InFlight sent, WriteReport report) {
    HttpResponse<byte[]> answer;
    try {
      answer = sent.answer.get();
    } catch (ExecutionException e) {
      answer = null; // a connection error: the careful way retries it
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new BulkWriteFailed("interrupted while writing to Elasticsearch", e);
    } finally {
      report.bulkNanos += System.nanoTime() - sent.began;
    }
    int status = answer == null ? 0 : answer.statusCode();
    if (answer == null || status == 429 || status == 502 || status == 503 || status == 504) {
      report.retriedRequests++;
      sleep(backoffMs(1));
      flush(sent.docs, report, post(sent.docs, report, 2)); // the request sent ahead was the first try
    } else {
      flush(sent.docs, report, new Response(status, answer.body()));
    }
  }

  private void flush(List<Doc> docs, WriteReport report) {
    flush(docs, report, null);
  }

  /** One request's worth: send it (unless its first answer is given), isolate refusals, retry what failed
   * transiently. */
  private void flush(List<Doc> docs, WriteReport report, Response first) {
    List<Doc> pending = docs;
    for (int attempt = 1; ; attempt++) {
      Map<Integer, Integer> transientStatuses = new TreeMap<>();
      List<Doc> again = new ArrayList<>();
      if (first != null) {
        sort(pending, first, report, again, transientStatuses);
        first = null;
      } else {
        isolate(pending, report, again, transientStatuses);
      }
      if (again.isEmpty()) {
        return;
      }
      if (attempt > config.retryCount) {
        throw new BulkWriteFailed(
            again.size() + " documents were still answered " + transientStatuses + " (HTTP status: count) by "
                + config.baseUrl + " after " + attempt + " tries", null);
      }
      report.retriedItems += again.size();
      sleep(backoffMs(attempt));
      pending = again;
    }
  }

  /** Send one request; split it while Elasticsearch refuses it whole; sort the items of what it accepts. */
  private void isolate(List<Doc> docs, WriteReport report, List<Doc> again, Map<Integer, Integer> statuses) {
    sort(docs, post(docs, report), report, again, statuses);
  }

  private void sort(List<Doc> docs, Response response, WriteReport report, List<Doc> again,
      Map<Integer, Integer> statuses) {
    if (response.status == 400 || response.status == 413) {
      if (docs.size() == 1) {
        String[] why = requestError(response);
        report.rejected.add(new WriteReport.Rejection(docs.get(0), response.status, why[0], why[1]));
        return;
      }
      report.splits++;
      int half = docs.size() / 2;
      isolate(new ArrayList<>(docs.subList(0, half)), report, again, statuses);
      isolate(new ArrayList<>(docs.subList(half, docs.size())), report, again, statuses);
      return;
    }
    if (response.status >= 300) {
      String[] why = requestError(response);
      throw new BulkWriteFailed(
          "Elasticsearch at " + config.baseUrl + " refused a bulk request: HTTP " + response.status + " "
              + why[0] + ": " + why[1], null);
    }
    JsonNode body = parse(response.body);
    JsonNode items = body.path("items");
    boolean errors = body.path("errors").asBoolean(true);
    java.util.Set<String> retriedKeys = new java.util.HashSet<>();
    for (int i = 0; i < docs.size(); i++) {
      Doc doc = docs.get(i);
      if (!errors && !doc.op.equals(Doc.UPDATE)) {
        report.indexed(doc, config.returnIds, doc.barKey);
        continue;
      }
      JsonNode result = items.path(i).elements().hasNext() ? items.path(i).elements().next() : null;
      int status = result == null ? 500 : result.path("status").asInt(500);
      if (retriedKeys.contains(doc.key())) {
        // an earlier action on this document is retried: this one goes again after it, whatever it got
        again.add(doc);
        continue;
      }
      if (status < 300) {
        report.indexed(doc, config.returnIds, doc.op.equals(Doc.UPDATE) ? barKey(result) : doc.barKey);
      } else if ((status == 409 && doc.conflictIsDone()) || (status == 404 && doc.op.equals(Doc.DELETE))) {
        report.done(doc);
      } else if (status == 429 || status >= 500) {
        again.add(doc);
        retriedKeys.add(doc.key());
        statuses.merge(status, 1, Integer::sum);
      } else {
        String[] why = itemError(result.path("error"));
        report.rejected.add(new WriteReport.Rejection(doc, status, why[0], why[1]));
      }
    }
  }

  /** The 1-minute bar an update touched: its document's symbol and time, as Elasticsearch answered them. */
  private static String barKey(JsonNode result) {
    JsonNode source = result.path("get").path("_source");
    if (!source.has("symbol") || !source.has("timestamp_ns")) {
      return null;
    }
    long seconds = Math.floorDiv(source.path("timestamp_ns").asLong(), Json.NANOS);
    return source.path("symbol").asText() + "|" + Math.floorDiv(seconds, 60) * 60;
  }

  private static final class Response {
    final int status;
    final byte[] body;

    Response(int status, byte[] body) {
      this.status = status;
      this.body = body;
    }
  }

  private static byte[] body(List<Doc> docs) {
    int size = 0;
    for (Doc doc : docs) {
      size += doc.line.length;
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream(size);
    for (Doc doc : docs) {
      out.write(doc.line, 0, doc.line.length);
    }
    return out.toByteArray();
  }

  private HttpRequest request(byte[] body) {
    return request(bulkUri, body);
  }

  private HttpRequest request(URI uri, byte[] body) {
    HttpRequest.Builder request =
        HttpRequest.newBuilder(uri)
            .timeout(Duration.ofMillis(config.requestTimeoutMs))
            .header("Content-Type", uri == bulkUri ? "application/x-ndjson" : "application/json")
            .POST(HttpRequest.BodyPublishers.ofByteArray(body));
    if (config.authorization != null) {
      request.header("Authorization", config.authorization);
    }
    return request.build();
  }

  /** POST the documents as one bulk request; retry connection errors and 429/502/503/504 with backoff. */
  private Response post(List<Doc> docs, WriteReport report) {
    return post(docs, report, 1);
  }

  private Response post(List<Doc> docs, WriteReport report, int firstAttempt) {
    return post(bulkUri, body(docs), report, firstAttempt);
  }

  private Response post(URI uri, byte[] body, WriteReport report, int firstAttempt) {
    HttpRequest built = request(uri, body);
    for (int attempt = firstAttempt; ; attempt++) {
      long began = System.nanoTime();
      String problem;
      Throwable cause = null;
      try {
        report.requests++;
        report.bytes += body.length;
        HttpResponse<byte[]> answer = http.send(built, HttpResponse.BodyHandlers.ofByteArray());
        int status = answer.statusCode();
        if (status != 429 && status != 502 && status != 503 && status != 504) {
          return new Response(status, answer.body());
        }
        problem = "HTTP " + status;
      } catch (IOException e) {
        problem = e.getClass().getSimpleName() + (e.getMessage() == null ? "" : ": " + e.getMessage());
        cause = e;
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new BulkWriteFailed("interrupted while writing to Elasticsearch", e);
      } finally {
        report.bulkNanos += System.nanoTime() - began;
      }
      if (attempt > config.retryCount) {
        throw new BulkWriteFailed(
            "Elasticsearch at " + config.baseUrl + " did not take a bulk request after " + attempt + " tries: "
                + problem, cause);
      }
      report.retriedRequests++;
      sleep(backoffMs(attempt));
    }
  }

  private long backoffMs(int attempt) {
    return Math.min(config.retryWaitMs * (1L << Math.min(attempt - 1, 20)), 60_000L);
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new BulkWriteFailed("interrupted while waiting to retry a bulk request", e);
    }
  }

  private static JsonNode parse(byte[] body) {
    try {
      return JSON.readTree(body);
    } catch (IOException e) {
      throw new BulkWriteFailed("Elasticsearch answered a bulk request with something that is not JSON", e);
    }
  }

  /** (type, reason) of a whole-request error body, or of the status when the body says nothing. */
  private static String[] requestError(Response response) {
    try {
      JsonNode error = JSON.readTree(response.body).path("error");
      if (error.isObject()) {
        return itemError(error);
      }
      if (error.isTextual()) {
        return new String[] {"http_" + response.status, clip(error.asText())};
      }
    } catch (IOException | RuntimeException e) {
      // not JSON (413 from the HTTP layer has no body): the status speaks
    }
    String text = new String(response.body, StandardCharsets.UTF_8).trim();
    String reason = response.status == 413 ? "request entity too large" : "bad request";
    return new String[] {"http_" + response.status, clip(text.isEmpty() ? reason : text)};
  }

  private static String[] itemError(JsonNode error) {
    String type = error.path("type").asText("error");
    String reason = error.path("reason").asText("");
    JsonNode cause = error.path("caused_by");
    if (cause.isObject()) {
      reason += " (caused by " + cause.path("type").asText() + ": " + cause.path("reason").asText() + ")";
    }
    return new String[] {type, clip(reason)};
  }

  private static String clip(String text) {
    return text.length() <= REASON_LIMIT ? text : text.substring(0, REASON_LIMIT) + "...";
  }

  static byte[] actionLine(Doc doc) {
    JsonStringEncoder encoder = JsonStringEncoder.getInstance();
    String source = doc.source;
    ByteArrayOutputStream out = new ByteArrayOutputStream(96 + (source == null ? 0 : source.length()));
    write(out, ("{\"" + doc.op + "\":{\"_index\":\"").getBytes(StandardCharsets.UTF_8));
    write(out, encoder.quoteAsUTF8(doc.index));
    write(out, "\",\"_id\":\"".getBytes(StandardCharsets.UTF_8));
    write(out, encoder.quoteAsUTF8(doc.id));
    write(out, "\"".getBytes(StandardCharsets.UTF_8));
    if (doc.version != null) {
      write(out, (",\"version\":" + doc.version + ",\"version_type\":\"external_gte\"").getBytes(StandardCharsets.UTF_8));
    }
    if (doc.op.equals(Doc.UPDATE)) {
      write(out, ",\"retry_on_conflict\":3".getBytes(StandardCharsets.UTF_8));
    }
    write(out, "}}\n".getBytes(StandardCharsets.UTF_8));
    if (source != null) {
      write(out, source.getBytes(StandardCharsets.UTF_8));
      out.write('\n');
    }
    return out.toByteArray();
  }

  private static void write(ByteArrayOutputStream out, byte[] bytes) {
    out.write(bytes, 0, bytes.length);
  }

  private static HttpClient newClient(SinkConfig config) {
    HttpClient.Builder builder =
        HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofMillis(Math.min(config.requestTimeoutMs, 10_000)));
    if (config.baseUrl.startsWith("https:")) {
      builder.sslContext(sslContext(config));
    }
    return builder.build();
  }

  private static SSLContext sslContext(SinkConfig config) {
    try {
      SSLContext context = SSLContext.getInstance("TLS");
      if (!config.verifyCerts) {
        context.init(null, new TrustManager[] {new TrustAll()}, null);
      } else if (config.caCerts != null) {
        KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
        store.load(null, null);
        try (InputStream in = new FileInputStream(config.caCerts)) {
          int n = 0;
          for (Certificate cert : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
            store.setCertificateEntry("ca-" + n++, cert);
          }
        }
        TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        factory.init(store);
        context.init(null, factory.getTrustManagers(), null);
      } else {
        return SSLContext.getDefault();
      }
      return context;
    } catch (Exception e) {
      throw new IllegalArgumentException("cannot set up TLS for " + config.baseUrl + ": " + e.getMessage(), e);
    }
  }

  /** elasticsearch.verify_certs: false, as in the Python client: any certificate, any host name. */
  private static final class TrustAll extends X509ExtendedTrustManager {
    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket) {}

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket) {}

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine) {}

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine) {}

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) {}

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) {}

    @Override
    public X509Certificate[] getAcceptedIssuers() {
      return new X509Certificate[0];
    }
  }
}
