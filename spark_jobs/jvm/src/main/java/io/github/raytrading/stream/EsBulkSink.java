package io.github.raytrading.stream;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import scala.Option;

/**
 * The streaming job's Elasticsearch sink: bulk requests straight from the executors' JVMs, so a micro-batch never
 * pays for a round trip through a Python worker. Called from Python through py4j (spark_jobs/es_sink.py):
 *
 * <pre>
 *   EsBulkSink.write(documents._jdf, config_json, tasks) // a DataFrame of index, doc_id, source [, op, version,
 *                                                        //   bar_key] [, produced_ms], in at most `tasks` tasks
 *   EsBulkSink.writeLocal(documents_json, config_json) // a few from the driver: [[index, id, source(, op)], ...]
 * </pre>
 *
 * Both return the JSON of a {@link WriteReport}.
 */
public final class EsBulkSink {
  private EsBulkSink() {}

  /** Index every row of {@code documents} from the executors in at most {@code tasks} tasks of about equal size
   * ({@link BalancedCoalescer}), one bulk stream per task. */
  public static String write(Dataset<Row> documents, String configJson, int tasks) {
    SinkConfig config = SinkConfig.parse(configJson);
    List<String> columns = List.of(documents.columns());
    boolean timed = columns.contains("produced_ms");
    boolean actions = columns.contains("op");
    boolean located = columns.contains("offset");
    boolean aliased = columns.contains("alias_id");
    Dataset<Row> rows =
        documents.selectExpr(
            "index", "doc_id", "source",
            actions ? "op" : "CAST(NULL AS STRING) AS op",
            actions ? "CAST(version AS BIGINT) AS version" : "CAST(NULL AS BIGINT) AS version",
            actions ? "bar_key" : "CAST(NULL AS STRING) AS bar_key",
            timed ? "CAST(produced_ms AS BIGINT) AS produced_ms" : "CAST(NULL AS BIGINT) AS produced_ms",
            located ? "topic" : "CAST(NULL AS STRING) AS topic",
            located ? "CAST(partition AS INT) AS partition" : "CAST(NULL AS INT) AS partition",
            located ? "CAST(offset AS BIGINT) AS offset" : "CAST(NULL AS BIGINT) AS offset",
            aliased ? "alias_id" : "CAST(NULL AS STRING) AS alias_id",
            aliased ? "alias_source" : "CAST(NULL AS STRING) AS alias_source");
    FlatMapFunction<Iterator<Row>, WriteReport> bulk =
        partition -> {
          LatestVersions rowsToSend = new LatestVersions(partition);
          Iterator<Doc> docs =
              new Iterator<>() {
                @Override
                public boolean hasNext() {
                  return rowsToSend.hasNext();
                }

                @Override
                public Doc next() {
                  Row row = rowsToSend.next();
                  String op = row.getString(3);
                  boolean update = Doc.UPDATE.equals(op); // only an update needs its Kafka record and alias
                  return new Doc(row.getString(0), row.getString(1), row.getString(2), op,
                      row.isNullAt(4) ? null : row.getLong(4), row.getString(5),
                      update ? row.getString(7) : null, update && !row.isNullAt(8) ? row.getInt(8) : null,
                      update && !row.isNullAt(9) ? row.getLong(9) : null, update ? row.getString(10) : null,
                      update ? row.getString(11) : null);
                }
              };
          WriteReport report = new BulkClient(config).write(docs);
          report.newestProducedMs = rowsToSend.newestProducedMs;
          // a superseded version is a row read (the batch's Kafka records) and a write made moot, as a 409 would
          report.documents += rowsToSend.superseded;
          report.duplicates += rowsToSend.superseded;
          return Collections.singletonList(report).iterator();
        };
    WriteReport total = new WriteReport();
    RDD<Row> balanced =
        rows.toJavaRDD().rdd().coalesce(Math.max(tasks, 1), false, Option.apply(new BalancedCoalescer()), null);
    for (WriteReport part : balanced.toJavaRDD().mapPartitions(bulk).collect()) {
      total.add(part);
    }
    return total.toJson();
  }

  /** Write documents given as JSON ({@code [[index, doc_id, source], ...]}, a fourth item {@code "delete"}
   * with a null source for a deletion, or any op; an update may add its Kafka record and a correction's alias:
   * {@code [index, doc_id, source, "update", topic, partition, offset, alias_id, alias_source]}) from this JVM (the
   * driver, or a test's plain JVM). */
  public static String writeLocal(String documentsJson, String configJson) {
    SinkConfig config = SinkConfig.parse(configJson);
    List<Doc> docs = new ArrayList<>();
    try {
      for (JsonNode item : new ObjectMapper().readTree(documentsJson)) {
        String op = item.path(3).isTextual() ? item.path(3).asText() : Doc.INDEX;
        String source = item.path(2).isNull() || item.path(2).isMissingNode() ? null : item.path(2).asText();
        docs.add(new Doc(item.path(0).asText(), item.path(1).asText(), source, op, null, null, text(item, 4),
            item.path(5).isNumber() ? item.path(5).asInt() : null,
            item.path(6).isNumber() ? item.path(6).asLong() : null, text(item, 7), text(item, 8)));
      }
    } catch (IOException e) {
      throw new IllegalArgumentException("documents must be a JSON list of [index, doc_id, source]", e);
    }
    return new BulkClient(config).write(docs.iterator()).toJson();
  }

  /**
   * A task's rows with its versioned index actions (quotes: the latest of each second stays) reduced to the highest
   * version of each document, the later in Kafka order among equal versions: exactly what Elasticsearch's {@code
   * external_gte} would keep of them, without a bulk item each. A real feed sends tens of quotes a second per
   * symbol and each second keeps one, so this is most of a quote-heavy batch's writing saved. The kept versions
   * come after the task's other rows (or as soon as 20,000 documents are held), so quotes never hold up the trades.
   */
  static final class LatestVersions implements Iterator<Row> {
    static final int HELD_MAX = 20_000; // documents held at most: a task's memory stays small whatever the batch

    private final Iterator<Row> rows;
    private Map<String, Row> latest = new LinkedHashMap<>();
    private Iterator<Row> kept;
    private Row next;
    long superseded;
    long newestProducedMs = Long.MIN_VALUE;

    LatestVersions(Iterator<Row> rows) {
      this.rows = rows;
    }

    @Override
    public boolean hasNext() {
      while (next == null) {
        if (kept != null && kept.hasNext()) {
          next = kept.next();
        } else if (rows.hasNext()) {
          kept = null;
          Row row = rows.next();
          if (!row.isNullAt(6)) {
            newestProducedMs = Math.max(newestProducedMs, row.getLong(6));
          }
          String op = row.getString(3);
          if (row.isNullAt(4) || !(op == null || Doc.INDEX.equals(op))) {
            next = row;
          } else {
            String key = row.getString(0) + '\u0000' + row.getString(1);
            Row before = latest.get(key);
            if (before != null) {
              superseded++;
            }
            if (before == null || row.getLong(4) >= before.getLong(4)) {
              latest.put(key, row);
            }
            if (latest.size() >= HELD_MAX) { // sent now; a later version in this task still wins in Elasticsearch
              kept = latest.values().iterator();
              latest = new LinkedHashMap<>();
            }
          }
        } else if (!latest.isEmpty()) {
          kept = latest.values().iterator();
          latest = new LinkedHashMap<>();
        } else {
          return false;
        }
      }
      return true;
    }

    @Override
    public Row next() {
      if (!hasNext()) {
        throw new java.util.NoSuchElementException();
      }
      Row row = next;
      next = null;
      return row;
    }
  }

  private static String text(JsonNode item, int position) {
    return item.path(position).isTextual() ? item.path(position).asText() : null;
  }
}
