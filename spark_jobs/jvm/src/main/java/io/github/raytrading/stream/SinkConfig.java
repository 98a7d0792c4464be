package io.github.raytrading.stream;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

/**
 * How the sink reaches Elasticsearch and sizes its bulk requests, parsed from the JSON the Python driver hands
 * over (spark_jobs/es_sink.py builds it from the platform's settings). Serializable: it travels to the executors
 * with each task. {@link #toString()} never shows the credentials.
 */
public final class SinkConfig implements Serializable {
  private static final long serialVersionUID = 1L;

  final String baseUrl; // scheme://host:port, without credentials or a trailing slash
  final String authorization; // the Authorization header value, or null
  final String caCerts; // a PEM file of trusted CAs, or null
  final boolean verifyCerts;
  final long requestTimeoutMs;
  final int batchEntries;
  final long batchBytes;
  final int retryCount;
  final long retryWaitMs;
  final boolean returnIds;
  final int maxInFlight; // bulk requests out at once per task
  final String deadLettersIndex; // where documents Elasticsearch refuses go
  final String tradeAliasesIndex; // where a corrected trade's new ids point to it
  final int rawMaxBytes;
  final int detailMax;
  final int textMax;
  final int esIdMaxBytes;
  final String separator;

  private SinkConfig(JsonNode node) {
    URI uri = URI.create(node.path("url").asText());
    String userInfo = uri.getRawUserInfo();
    String auth = text(node, "authorization");
    if (auth == null && userInfo != null && userInfo.contains(":")) {
      // credentials in the URL (http://user:password@host:9200) become Basic auth, as the Python client does
      String[] parts = userInfo.split(":", 2);
      String pair = decode(parts[0]) + ":" + decode(parts[1]);
      auth = "Basic " + Base64.getEncoder().encodeToString(pair.getBytes(StandardCharsets.UTF_8));
    }
    // a path prefix (https://proxy/es, Elasticsearch behind a reverse proxy) is kept, as the Python clients keep it;
    // no port means the scheme's own
    String port = uri.getPort() == -1 ? "" : ":" + uri.getPort();
    String path = uri.getRawPath() == null ? "" : uri.getRawPath().replaceAll("/+$", "");
    this.baseUrl = uri.getScheme() + "://" + uri.getHost() + port + path;
    this.authorization = auth;
    this.caCerts = text(node, "ca_certs");
    this.verifyCerts = node.path("verify_certs").asBoolean(true);
    this.requestTimeoutMs = (long) (node.path("request_timeout_s").asDouble(30) * 1000);
    this.batchEntries = Math.max(1, node.path("batch_entries").asInt(5000));
    this.batchBytes = Math.max(1, node.path("batch_bytes").asLong(5L << 20));
    this.retryCount = Math.max(0, node.path("retry_count").asInt(6));
    this.retryWaitMs = (long) (node.path("retry_wait_s").asDouble(5) * 1000);
    this.returnIds = node.path("return_ids").asBoolean(false);
    this.maxInFlight = Math.max(1, node.path("max_in_flight").asInt(2));
    JsonNode limits = node.path("limits");
    this.deadLettersIndex = node.path("dead_letters_index").asText();
    this.tradeAliasesIndex = node.path("trade_aliases_index").asText("trade-aliases");
    this.rawMaxBytes = limits.path("raw_max_bytes").asInt(32768);
    this.detailMax = limits.path("detail_max").asInt(2000);
    this.textMax = limits.path("text_max").asInt(256);
    this.esIdMaxBytes = limits.path("es_id_max_bytes").asInt(512);
    this.separator = limits.path("id_separator").asText("|");
  }

  public static SinkConfig parse(String json) {
    try {
      return new SinkConfig(new ObjectMapper().readTree(json));
    } catch (IOException e) {
      throw new IllegalArgumentException("the sink configuration is not valid JSON", e);
    }
  }

  /** The same configuration, asking (or not) for the ids of the documents indexed. */
  SinkConfig withReturnIds(boolean wanted) {
    return wanted == returnIds ? this : new SinkConfig(this, wanted);
  }

  private SinkConfig(SinkConfig other, boolean returnIds) {
    this.baseUrl = other.baseUrl;
    this.authorization = other.authorization;
    this.caCerts = other.caCerts;
    this.verifyCerts = other.verifyCerts;
    this.requestTimeoutMs = other.requestTimeoutMs;
    this.batchEntries = other.batchEntries;
    this.batchBytes = other.batchBytes;
    this.retryCount = other.retryCount;
    this.retryWaitMs = other.retryWaitMs;
    this.returnIds = returnIds;
    this.maxInFlight = other.maxInFlight;
    this.deadLettersIndex = other.deadLettersIndex;
    this.tradeAliasesIndex = other.tradeAliasesIndex;
    this.rawMaxBytes = other.rawMaxBytes;
    this.detailMax = other.detailMax;
    this.textMax = other.textMax;
    this.esIdMaxBytes = other.esIdMaxBytes;
    this.separator = other.separator;
  }

  /** Identifies an HTTP client that may be shared: same endpoint, same trust settings. */
  String clientKey() {
    return baseUrl + "|" + caCerts + "|" + verifyCerts;
  }

  private static String text(JsonNode node, String field) {
    JsonNode value = node.get(field);
    return value == null || value.isNull() ? null : value.asText();
  }

  private static String decode(String part) {
    return URLDecoder.decode(part, StandardCharsets.UTF_8);
  }

  @Override
  public String toString() {
    return "SinkConfig{" + baseUrl + (authorization == null ? "" : ", with credentials") + "}";
  }
}
