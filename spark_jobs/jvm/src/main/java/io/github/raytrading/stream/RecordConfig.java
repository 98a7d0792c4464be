package io.github.raytrading.stream;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;

/**
 * What the record rules need to know, handed over as JSON by spark_jobs/records.py: the topic and index names
 * from the settings, and the limits, whose one source is ray_app/schemas.py (the ingest models check the same).
 */
public final class RecordConfig implements Serializable {
  private static final long serialVersionUID = 1L;

  final String tradesTopic;
  final String barsTopic;
  final String deadLettersTopic;
  final String quotesTopic;
  final String tradesIndex;
  final String quotesIndex;
  final String bars1mIndex;
  final String bars1hIndex;
  final String deadLettersIndex;
  final String vendorBars1mIndex;
  final String vendorBars1hIndex;
  final String tradeAliasesIndex;
  final long maxFutureMs;
  final int symbolMaxLength;
  final int tradeIdMaxBytes;
  final int codeMaxLength;
  final int maxConditions;
  final int sourceMaxLength;
  final int esIdMaxBytes;
  final int rawMaxBytes;
  final int quoteMax;
  final int textMax;
  final int detailMax;
  final String separator;

  private RecordConfig(JsonNode node) {
    JsonNode topics = node.path("topics");
    JsonNode indices = node.path("indices");
    JsonNode limits = node.path("limits");
    tradesTopic = topics.path("trades").asText();
    barsTopic = topics.path("bars").asText();
    deadLettersTopic = topics.path("dead_letters").asText();
    quotesTopic = topics.path("quotes").asText();
    tradesIndex = indices.path("trades").asText();
    quotesIndex = indices.path("quotes").asText();
    bars1mIndex = indices.path("bars_1m").asText();
    bars1hIndex = indices.path("bars_1h").asText();
    deadLettersIndex = indices.path("dead_letters").asText();
    vendorBars1mIndex = indices.path("vendor_bars_1m").asText();
    vendorBars1hIndex = indices.path("vendor_bars_1h").asText();
    tradeAliasesIndex = indices.path("trade_aliases").asText();
    maxFutureMs = node.path("max_future_s").asLong() * 1000;
    symbolMaxLength = limits.path("symbol_max_length").asInt();
    tradeIdMaxBytes = limits.path("trade_id_max_bytes").asInt();
    codeMaxLength = limits.path("code_max_length").asInt();
    maxConditions = limits.path("max_conditions").asInt();
    sourceMaxLength = limits.path("source_max_length").asInt();
    esIdMaxBytes = limits.path("es_id_max_bytes").asInt();
    rawMaxBytes = limits.path("raw_max_bytes").asInt();
    quoteMax = limits.path("quote_max").asInt();
    textMax = limits.path("text_max").asInt();
    detailMax = limits.path("detail_max").asInt();
    separator = limits.path("id_separator").asText("|");
  }

  public static RecordConfig parse(String json) {
    try {
      return new RecordConfig(new ObjectMapper().readTree(json));
    } catch (IOException e) {
      throw new IllegalArgumentException("the record rules' configuration is not valid JSON", e);
    }
  }
}
