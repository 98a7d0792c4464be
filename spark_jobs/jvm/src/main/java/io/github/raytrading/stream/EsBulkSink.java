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
 *   EsBulkSink.write(documents._jdf, config_json)     // a DataFrame of index, doc_id, source [, produced_ms]
 *   EsBulkSink.writeLocal(documents_json, config_json) // a few documents from the driver: [[index, id, source], ...]
 * </pre>
 *
 * Both return the JSON of a {@link WriteReport}.
 */
public final class EsBulkSink {
  private EsBulkSink() {}

  /** Index every row of {@code documents} from the executors, one bulk stream per partition. */
  public static String write(Dataset<Row> documents, String configJson) {
    SinkConfig config = SinkConfig.parse(configJson);
    boolean timed = List.of(documents.columns()).contains("produced_ms");
    Dataset<Row> rows =
        timed
            ? documents.selectExpr("index", "doc_id", "source", "CAST(produced_ms AS BIGINT) AS produced_ms")
            : documents.selectExpr("index", "doc_id", "source");
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
                  if (timed && !row.isNullAt(3)) {
                    newest[0] = Math.max(newest[0], row.getLong(3));
                  }
                  return new Doc(row.getString(0), row.getString(1), row.getString(2));
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

  /** Index documents given as JSON ({@code [[index, doc_id, source], ...]}) from this JVM (the driver). */
  public static String writeLocal(String documentsJson, String configJson) {
    SinkConfig config = SinkConfig.parse(configJson);
    List<Doc> docs = new ArrayList<>();
    try {
      for (JsonNode item : new ObjectMapper().readTree(documentsJson)) {
        docs.add(new Doc(item.path(0).asText(), item.path(1).asText(), item.path(2).asText()));
      }
    } catch (IOException e) {
      throw new IllegalArgumentException("documents must be a JSON list of [index, doc_id, source]", e);
    }
    return new BulkClient(config).write(docs.iterator()).toJson();
  }
}
