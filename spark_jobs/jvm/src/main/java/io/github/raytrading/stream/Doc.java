package io.github.raytrading.stream;

import java.io.Serializable;
import java.nio.charset.StandardCharsets;

/**
 * One bulk action: target index, deterministic id, JSON body, and how it is written:
 *
 * <ul>
 *   <li>{@code index}: the document as it is now (a bar, a dead letter); with a {@code version}, Elasticsearch's
 *       external versioning keeps the one with the highest version (a quote: its time), so a replay or an older
 *       record never overwrites a newer one;
 *   <li>{@code create}: only if absent (a trade: a copy that reached Kafka twice, or a replay, changes nothing, and
 *       a cancelled trade sent again stays cancelled);
 *   <li>{@code update}: fields merged into an existing document, or a script run on it (a cancel, a correction);
 *       absent, it is refused with 404;
 *   <li>{@code delete}: a bar no trade is left in.
 * </ul>
 *
 * {@code barKey} ({@code symbol|minute start in seconds}) names the 1-minute bar the action touches, when the
 * record says it; an update learns it from Elasticsearch's answer (the trade's time). An update also knows the
 * Kafka record it came from ({@code topic}, {@code partition}, {@code offset}: its dead letter's id when the trade
 * is not found), and a correction the alias document of its corrected id ({@code aliasId}, {@code aliasSource}).
 */
final class Doc implements Serializable {
  private static final long serialVersionUID = 2L;

  static final String INDEX = "index";
  static final String CREATE = "create";
  static final String UPDATE = "update";
  static final String DELETE = "delete";

  final String index;
  final String id;
  final String source; // the document; for an update, the update body ({"doc": ...} or {"script": ...}); null for a delete
  final String op;
  final Long version; // external_gte version of an index action, or null
  final String barKey;
  final String topic;
  final Integer partition;
  final Long offset;
  final String aliasId;
  final String aliasSource;
  final byte[] line; // the bulk request's lines for this action, UTF-8

  Doc(String index, String id, String source) {
    this(index, id, source, INDEX, null, null);
  }

  Doc(String index, String id, String source, String op, Long version, String barKey) {
    this(index, id, source, op, version, barKey, null, null, null, null, null);
  }

  Doc(String index, String id, String source, String op, Long version, String barKey, String topic,
      Integer partition, Long offset, String aliasId, String aliasSource) {
    this.index = index;
    this.id = id;
    this.source = source;
    this.op = op == null ? INDEX : op;
    this.version = version;
    this.barKey = barKey;
    this.topic = topic;
    this.partition = partition;
    this.offset = offset;
    this.aliasId = aliasId;
    this.aliasSource = aliasSource;
    this.line = BulkClient.actionLine(this);
  }

  /** The same action on another document: an update sent to the trade an alias named. */
  Doc withId(String newId) {
    return new Doc(index, newId, source, op, version, barKey, topic, partition, offset, aliasId, aliasSource);
  }

  /** A 409 for this action means "already there, or superseded by a newer version": done, not refused. */
  boolean conflictIsDone() {
    return op.equals(CREATE) || version != null;
  }

  /** Whether the action came from a Kafka record whose coordinates name its dead letter. */
  boolean located() {
    return topic != null && partition != null && offset != null;
  }

  /** Index and id: two actions with the same key must reach Elasticsearch in the order they were read. */
  String key() {
    return index + '\u0000' + id;
  }

  int size() {
    return line.length;
  }

  /** UTF-8 length of the id: Elasticsearch refuses a whole bulk request for one id over 512 bytes. */
  int idBytes() {
    return id.getBytes(StandardCharsets.UTF_8).length;
  }
}
