package io.github.raytrading.stream;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * What one write did, merged across tasks: documents indexed per index, the documents Elasticsearch refused
 * (with its reason: they become dead letters), and where the time went. Turned into JSON for the Python driver.
 */
public final class WriteReport implements Serializable {
  private static final long serialVersionUID = 1L;

  /** A document Elasticsearch refused for good (not a transient error), with Elasticsearch's own words. */
  public static final class Rejection implements Serializable {
    private static final long serialVersionUID = 1L;
    public final String index;
    public final String docId;
    public final String source;
    public final int status;
    public final String type;
    public final String reason;
    public final String topic; // the Kafka record the document came from, when known
    public final Integer partition;
    public final Long offset;

    Rejection(Doc doc, int status, String type, String reason) {
      this.index = doc.index;
      this.docId = doc.id;
      this.source = doc.source;
      this.status = status;
      this.type = type;
      this.reason = reason;
      this.topic = doc.topic;
      this.partition = doc.partition;
      this.offset = doc.offset;
    }

    boolean located() {
      return topic != null && partition != null && offset != null;
    }
  }

  static final int SAMPLES = 20;

  final Map<String, Long> indexed = new TreeMap<>();
  // refused documents of the task in progress; the sink turns them into dead letters before the report leaves
  // the task, so refused documents never travel to the driver
  transient List<Rejection> rejected = new ArrayList<>();
  final List<Map<String, Object>> samples = new ArrayList<>(); // the first few refusals, for the log
  long rejectedCount; // documents refused for good, each written as a dead letter
  long lostDeadLetters; // dead letters refused even without their raw document (logged by the executor)
  final Map<String, List<String>> ids = new TreeMap<>(); // only when the config asks for them
  final TreeSet<String> touched = new TreeSet<>(); // 1-minute bars (symbol|start seconds) the writes touched
  long duplicates; // creates of documents already there, versioned writes older than what is there: done
  long documents; // documents handed to the sink
  long bytes; // bulk body bytes sent, retries and splits included
  long requests; // bulk requests sent
  long splits; // whole-request refusals (400/413) split in two
  long retriedItems; // items retried after a 429/5xx
  long retriedRequests; // whole requests retried after a connection error or a 429/5xx
  long bulkNanos; // wall time inside bulk requests, summed over tasks
  long taskNanos; // wall time of the tasks, summed
  long tasks;
  long newestProducedMs = Long.MIN_VALUE; // the newest Kafka timestamp among the documents, if they carry one

  void sample(Rejection r) {
    if (samples.size() < SAMPLES) {
      Map<String, Object> item = new LinkedHashMap<>();
      item.put("index", r.index);
      item.put("doc_id", r.docId.length() <= 200 ? r.docId : r.docId.substring(0, 200) + "...");
      item.put("status", r.status);
      item.put("type", r.type);
      item.put("reason", r.reason);
      samples.add(item);
    }
  }

  void indexed(Doc doc, boolean keepId, String barKey) {
    indexed.merge(doc.index, 1L, Long::sum);
    if (keepId) {
      ids.computeIfAbsent(doc.index, k -> new ArrayList<>()).add(doc.id);
    }
    if (barKey != null) {
      touched.add(barKey);
    }
  }

  /** An action Elasticsearch had nothing to do for: a trade already indexed, a quote older than the one there, a
   * bar already deleted. Its bar still counts as touched (a replayed batch recomputes what it may not have). */
  void done(Doc doc) {
    duplicates++;
    if (doc.barKey != null) {
      touched.add(doc.barKey);
    }
  }

  void add(WriteReport other) {
    other.indexed.forEach((k, v) -> indexed.merge(k, v, Long::sum));
    if (other.rejected != null) {
      rejected.addAll(other.rejected);
    }
    for (Map<String, Object> sample : other.samples) {
      if (samples.size() < SAMPLES) {
        samples.add(sample);
      }
    }
    rejectedCount += other.rejectedCount;
    lostDeadLetters += other.lostDeadLetters;
    other.ids.forEach((k, v) -> ids.computeIfAbsent(k, x -> new ArrayList<>()).addAll(v));
    touched.addAll(other.touched);
    duplicates += other.duplicates;
    documents += other.documents;
    bytes += other.bytes;
    requests += other.requests;
    splits += other.splits;
    retriedItems += other.retriedItems;
    retriedRequests += other.retriedRequests;
    bulkNanos += other.bulkNanos;
    taskNanos += other.taskNanos;
    tasks += other.tasks;
    newestProducedMs = Math.max(newestProducedMs, other.newestProducedMs);
  }

  String toJson() {
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("indexed", indexed);
    out.put("rejected", rejectedCount);
    out.put("lost_dead_letters", lostDeadLetters);
    out.put("samples", samples);
    out.put("ids", ids);
    out.put("touched", touched);
    out.put("duplicates", duplicates);
    out.put("documents", documents);
    out.put("bytes", bytes);
    out.put("requests", requests);
    out.put("splits", splits);
    out.put("retried_items", retriedItems);
    out.put("retried_requests", retriedRequests);
    out.put("bulk_seconds", bulkNanos / 1e9);
    out.put("task_seconds", taskNanos / 1e9);
    out.put("tasks", tasks);
    out.put("newest_produced_ms", newestProducedMs == Long.MIN_VALUE ? null : newestProducedMs);
    try {
      return new ObjectMapper().writeValueAsString(out);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }
}
