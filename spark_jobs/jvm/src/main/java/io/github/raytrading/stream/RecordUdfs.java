package io.github.raytrading.stream;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF5;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * The record rules as a Spark SQL function, registered by spark_jobs/records.py:
 *
 * <pre>
 *   ray_app_record_document(topic, partition, offset, kafka_ms, value)
 *     -> struct&lt;index, doc_id, source, op, version, bar_key, alias_id, alias_source&gt;
 * </pre>
 *
 * Nondeterministic (it reads the clock for the future-timestamp rule), which also keeps Spark from evaluating it
 * once per field it returns.
 */
public final class RecordUdfs {
  private RecordUdfs() {}

  public static final StructType DOCUMENT =
      new StructType()
          .add("index", DataTypes.StringType)
          .add("doc_id", DataTypes.StringType)
          .add("source", DataTypes.StringType)
          .add("op", DataTypes.StringType)
          .add("version", DataTypes.LongType)
          .add("bar_key", DataTypes.StringType)
          .add("alias_id", DataTypes.StringType)
          .add("alias_source", DataTypes.StringType);

  public static void register(SparkSession spark, String configJson) {
    RecordConfig config = RecordConfig.parse(configJson);
    UDF5<String, Integer, Long, Long, byte[], Row> document =
        (topic, partition, offset, kafkaMs, value) -> {
          Records.Document doc = Records.document(topic, partition, offset, kafkaMs, value, config);
          return RowFactory.create(doc.index, doc.id, doc.source, doc.op, doc.version, doc.barKey, doc.aliasId,
              doc.aliasSource);
        };
    UserDefinedFunction documentUdf = functions.udf(document, DOCUMENT).asNondeterministic();
    spark.udf().register("ray_app_record_document", documentUdf);
  }

  /** For tests and tools: one record's action as JSON [index, doc_id, source, op, version, bar_key, alias_id,
   * alias_source], without Spark. */
  public static String documentOf(String configJson, String topic, int partition, long offset, Long kafkaMs,
      byte[] value) {
    Records.Document doc = Records.document(topic, partition, offset, kafkaMs, value, RecordConfig.parse(configJson));
    try {
      return Json.READER.writeValueAsString(
          new Object[] {doc.index, doc.id, doc.source, doc.op, doc.version, doc.barKey, doc.aliasId, doc.aliasSource});
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }
}
