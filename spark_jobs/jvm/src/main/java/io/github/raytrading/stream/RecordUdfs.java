package io.github.raytrading.stream;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.api.java.UDF5;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * The record rules as Spark SQL functions, registered by spark_jobs/records.py:
 *
 * <pre>
 *   ray_app_record_document(topic, partition, offset, kafka_ms, value) -> struct&lt;index, doc_id, source&gt;
 *   ray_app_trade(value) -> struct&lt;symbol, exchange, trade_id, price, size, ts_ns&gt;, null for an invalid trade
 * </pre>
 *
 * Nondeterministic (they read the clock for the future-timestamp rule), which also keeps Spark from evaluating
 * one twice for the fields it returns.
 */
public final class RecordUdfs {
  private RecordUdfs() {}

  public static final StructType DOCUMENT =
      new StructType()
          .add("index", DataTypes.StringType)
          .add("doc_id", DataTypes.StringType)
          .add("source", DataTypes.StringType);
  public static final StructType TRADE =
      new StructType()
          .add("symbol", DataTypes.StringType)
          .add("exchange", DataTypes.StringType)
          .add("trade_id", DataTypes.StringType)
          .add("price", DataTypes.DoubleType)
          .add("size", DataTypes.DoubleType)
          .add("ts_ns", DataTypes.LongType);

  public static void register(SparkSession spark, String configJson) {
    RecordConfig config = RecordConfig.parse(configJson);
    UDF5<String, Integer, Long, Long, byte[], Row> document =
        (topic, partition, offset, kafkaMs, value) -> {
          Records.Document doc = Records.document(topic, partition, offset, kafkaMs, value, config);
          return RowFactory.create(doc.index, doc.id, doc.source);
        };
    UDF2<byte[], Long, Row> trade =
        (value, kafkaMs) -> {
          Records.Trade t = validTrade(value, kafkaMs, config);
          return t == null ? null : RowFactory.create(t.symbol, t.exchange, t.tradeId, t.price, t.size, t.tsNanos);
        };
    UserDefinedFunction documentUdf = functions.udf(document, DOCUMENT).asNondeterministic();
    UserDefinedFunction tradeUdf = functions.udf(trade, TRADE).asNondeterministic();
    spark.udf().register("ray_app_record_document", documentUdf);
    spark.udf().register("ray_app_trade", tradeUdf);
  }

  /** The trade the bars query counts, or null for a record the records query dead-letters. */
  static Records.Trade validTrade(byte[] value, Long kafkaMs, RecordConfig config) {
    try {
      return Records.trade(Records.object(value), config, kafkaMs);
    } catch (Invalid e) {
      return null;
    }
  }

  /** For tests and tools: whether the bars query counts this trades-topic record, without Spark. */
  public static boolean countsAsTrade(String configJson, Long kafkaMs, byte[] value) {
    return validTrade(value, kafkaMs, RecordConfig.parse(configJson)) != null;
  }

  /** For tests and tools: one record's document as JSON [index, doc_id, source], without Spark. */
  public static String documentOf(String configJson, String topic, int partition, long offset, Long kafkaMs,
      byte[] value) {
    Records.Document doc = Records.document(topic, partition, offset, kafkaMs, value, RecordConfig.parse(configJson));
    try {
      return Json.READER.writeValueAsString(new String[] {doc.index, doc.id, doc.source});
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }
}
