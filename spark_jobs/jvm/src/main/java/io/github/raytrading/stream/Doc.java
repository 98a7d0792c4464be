package io.github.raytrading.stream;

import java.io.Serializable;
import java.nio.charset.StandardCharsets;

/** One document to index: target index, deterministic id, JSON source, and its Kafka time if it has one. */
final class Doc implements Serializable {
  private static final long serialVersionUID = 1L;

  final String index;
  final String id;
  final String source;
  final byte[] line; // the bulk request's two lines for this document, UTF-8

  Doc(String index, String id, String source) {
    this.index = index;
    this.id = id;
    this.source = source;
    this.line = BulkClient.actionLine(index, id, source);
  }

  int size() {
    return line.length;
  }

  /** UTF-8 length of the id: Elasticsearch refuses a whole bulk request for one id over 512 bytes. */
  int idBytes() {
    return id.getBytes(StandardCharsets.UTF_8).length;
  }
}
