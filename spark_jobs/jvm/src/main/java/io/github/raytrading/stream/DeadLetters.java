package io.github.raytrading.stream;

import java.nio.charset.StandardCharsets;

/** Dead letters for documents Elasticsearch itself refused (a mapping conflict, a date out of range), written
 * by the sink in the same task, so the batch commits: the same fields and bounds as the record rules' dead
 * letters, with the refused document as the raw payload. A cancel or correction of a trade that is not in the
 * trades index is {@code unknown_trade}; every other refusal is {@code rejected}. A document that came from a Kafka
 * record (a cancel, a correction) is named by the record, {@code topic|partition|offset}, with the coordinates in
 * its fields: one dead letter per record, however many name the same trade. */
final class DeadLetters {
  private DeadLetters() {}

  /** ``topic|partition|offset`` of the record, or ``rejected|index|doc_id`` with the doc id as sha256:<hex> when the
   * whole would pass 512 bytes. */
  static String id(WriteReport.Rejection r, SinkConfig c) {
    if (r.located()) {
      return r.topic + c.separator + r.partition + c.separator + r.offset;
    }
    String head = "rejected" + c.separator + Json.cut(r.index, c.textMax) + c.separator;
    String natural = head + r.docId;
    if (Json.utf8Length(natural) <= c.esIdMaxBytes) {
      return natural;
    }
    return head + "sha256:" + Json.sha256(r.docId.getBytes(StandardCharsets.UTF_8));
  }

  /** The dead letter of one refused document; {@code minimal} leaves the document out (its length and hash
   * stay), the fallback when even the full dead letter was refused. */
  static Doc of(WriteReport.Rejection r, SinkConfig c, boolean minimal) {
    byte[] raw = r.source.getBytes(StandardCharsets.UTF_8);
    String now = Json.formatNanos(System.currentTimeMillis() * 1_000_000);
    boolean unknownTrade = r.status == 404 && "document_missing_exception".equals(r.type);
    String detail = (unknownTrade ? "a cancel or correction of a trade never seen: no trade " + r.docId + " in "
        + r.index + " (symbol|exchange|trading day|trade id), nor a correction that gave a trade that id (HTTP 404 "
        + r.type + ")" : "HTTP " + r.status + " " + r.type + ": " + r.reason);
    Json.Doc doc = new Json.Doc().put("schema_version", 1L).put("stage", Records.STAGE)
        .put("reason", unknownTrade ? "unknown_trade" : "rejected")
        .put("detail", Json.cut(detail, minimal ? 200 : c.detailMax))
        .put("raw", minimal ? null : new String(raw, 0, Math.min(raw.length, c.rawMaxBytes), StandardCharsets.UTF_8))
        .put("raw_encoding", "utf-8").put("raw_bytes", (long) raw.length).put("raw_sha256", Json.sha256(raw))
        .put("raw_truncated", minimal || raw.length > c.rawMaxBytes)
        .put("intended_index", Json.cut(r.index, c.textMax)).put("doc_id", Json.cut(r.docId, c.esIdMaxBytes))
        .put("topic", r.topic).put("partition", r.partition == null ? null : (long) r.partition).put("offset", r.offset)
        .put("timestamp", now).put("received_at", now);
    return new Doc(c.deadLettersIndex, id(r, c), doc.json());
  }
}
