package io.github.raytrading.stream;

/** A record that breaks a rule: the dead letter's reason (a fixed word) and detail (plain words). */
final class Invalid extends Exception {
  private static final long serialVersionUID = 1L;

  final String reason;
  final String detail;

  Invalid(String reason, String detail) {
    super(reason + ": " + detail, null, false, false); // no stack trace: this is data, not a bug
    this.reason = reason;
    this.detail = detail;
  }

  static Invalid missing(String field) {
    return new Invalid("missing_field", "field '" + field + "' is missing");
  }

  static Invalid value(String detail) {
    return new Invalid("invalid_value", detail);
  }
}
