package io.github.raytrading.stream;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.HexFormat;
import java.util.regex.Pattern;

/** Reading Kafka values leniently (every field as text first, as a wrong type must name its field) and writing
 * documents; the time and hash helpers every document uses. */
final class Json {
  private Json() {}

  static final ObjectMapper READER =
      new ObjectMapper(
              JsonFactory.builder()
                  .streamReadConstraints(
                      StreamReadConstraints.builder().maxNestingDepth(64).maxStringLength(4 << 20).build())
                  .build())
          .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
          .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);
  private static final JsonFactory WRITER = new JsonFactory();
  private static final Pattern DECIMAL = Pattern.compile("[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?");
  private static final DateTimeFormatter SECONDS =
      DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss").withZone(ZoneOffset.UTC);
  static final long NANOS = 1_000_000_000L;
  static final long MAX_DATE_NANOS_MS = Long.MAX_VALUE / 1_000_000; // date_nanos ends in 2262

  /** The value of a field as text: a string as it is, a number or boolean as JSON writes it, an object or list
   * as its JSON; null when absent or JSON null. */
  static String text(JsonNode record, String field) {
    JsonNode node = record.get(field);
    if (node == null || node.isNull()) {
      return null;
    }
    return node.isValueNode() ? node.asText() : node.toString();
  }

  static boolean structured(JsonNode record, String field) {
    JsonNode node = record.get(field);
    return node != null && node.isContainerNode();
  }

  /** A number given as a JSON number or as decimal text; null when it is neither or not finite. */
  static Double number(JsonNode record, String field) {
    JsonNode node = record.get(field);
    double value;
    if (node == null || node.isNull()) {
      return null;
    } else if (node.isNumber()) {
      value = node.doubleValue();
    } else if (node.isTextual() && DECIMAL.matcher(node.asText().trim()).matches()) {
      value = Double.parseDouble(node.asText().trim());
    } else {
      return null;
    }
    return Double.isFinite(value) ? value : null;
  }

  /** At most {@code limit} characters of a bad value, with the length when cut, for a detail. */
  static String quote(String value, int limit) {
    if (value == null) {
      return "null";
    }
    return value.length() <= limit ? value : value.substring(0, limit) + "... (" + value.length() + " chars)";
  }

  static String cut(String value, int limit) {
    return value == null || value.length() <= limit ? value : value.substring(0, limit);
  }

  static int utf8Length(String value) {
    return value.getBytes(StandardCharsets.UTF_8).length;
  }

  /** Nanoseconds since the epoch -> 2026-11-28T14:30:00.123456789Z, as the ingest stage writes it. */
  static String formatNanos(long epochNanos) {
    long seconds = Math.floorDiv(epochNanos, NANOS);
    long nanos = Math.floorMod(epochNanos, NANOS);
    return SECONDS.format(Instant.ofEpochSecond(seconds)) + "." + String.format("%09d", nanos) + "Z";
  }

  private static final ZoneId NEW_YORK = ZoneId.of("America/New_York");

  /** The US trading day of an instant: its New York calendar date, 2026-11-30 (ray_app.times.trading_day). */
  static String tradingDay(long epochNanos) {
    return Instant.ofEpochSecond(Math.floorDiv(epochNanos, NANOS)).atZone(NEW_YORK).toLocalDate().toString();
  }

  static String formatSeconds(long epochSeconds) {
    return SECONDS.format(Instant.ofEpochSecond(epochSeconds)) + "Z";
  }

  static String sha256(byte[] bytes) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** A document, field by field in a fixed order; null values are left out (as Spark's to_json does). */
  static final class Doc implements AutoCloseable {
    private final StringWriter out = new StringWriter(256);
    private final JsonGenerator gen;

    Doc() {
      try {
        gen = WRITER.createGenerator(out);
        gen.writeStartObject();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    Doc put(String field, String value) {
      try {
        if (value != null) {
          gen.writeStringField(field, value);
        }
        return this;
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    Doc put(String field, Double value) {
      try {
        if (value != null) {
          gen.writeNumberField(field, value);
        }
        return this;
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    Doc put(String field, Long value) {
      try {
        if (value != null) {
          gen.writeNumberField(field, value);
        }
        return this;
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    Doc put(String field, Boolean value) {
      try {
        if (value != null) {
          gen.writeBooleanField(field, value);
        }
        return this;
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    /** A field whose value is JSON already (an object of parameters). */
    Doc putJson(String field, String json) {
      try {
        gen.writeFieldName(field);
        gen.writeRawValue(json);
        return this;
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    Doc put(String field, java.util.List<String> values) {
      try {
        if (values != null) {
          gen.writeArrayFieldStart(field);
          for (String value : values) {
            gen.writeString(value);
          }
          gen.writeEndArray();
        }
        return this;
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    String json() {
      try {
        gen.writeEndObject();
        gen.close();
        return out.toString();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    @Override
    public void close() {}
  }
}
