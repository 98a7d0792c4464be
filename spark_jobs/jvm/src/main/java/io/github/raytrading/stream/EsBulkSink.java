package io.github.raytrading.stream;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;

/**
 * The streaming job's Elasticsearch sink: bulk requests straight from the executors' JVMs, so a micro-batch never
 * pays for a round trip through a Python worker. Called from Python through py4j (spark_jobs/es_sink.py):
 *
 * <pre>
 *   EsBulkSink.write(documents._jdf, config_json)     // a DataFrame of index, doc_id, source [, op, version,
 *                                                     //   bar_key] [, produced_ms]
 *   EsBulkSink.writeLocal(documents_json, config_json) // a few from the driver: [[index, id, source(, op)], ...]
 * </pre>
 *
 * Both return the JSON of a {@link WriteReport}.
 */
public final class EsBulkSink {
  private EsBulkSink() {}

  /** Index every row of {@code documents} from the executors, one bulk stream per partition. */
  public static String write(Dataset<Row> documents, String configJson) {
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
          long[] newest = {Long.MIN_VALUE};
          Iterator<Doc> docs =
              new Iterator<>() {
                @Override
                public boolean hasNext() {
                  return partition.hasNext();
                }

                @Override
                public Doc next() {
                  Row row = partition.next();
                  if (!row.isNullAt(6)) {
                    newest[0] = Math.max(newest[0], row.getLong(6));
                  }
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
          report.newestProducedMs = newest[0];
          return Collections.singletonList(report).iterator();
        };
    WriteReport total = new WriteReport();
    for (WriteReport part : rows.toJavaRDD().mapPartitions(bulk).collect()) {
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

  private static String text(JsonNode item, int position) {
    return item.path(position).isTextual() ? item.path(position).asText() : null;
  }
}
