package io.github.raytrading.stream;

/**
 * Elasticsearch stayed unreachable, overloaded or unwilling (authentication, a missing index) through every
 * retry. Not a problem of one document: the batch fails, is not committed, and is replayed when the query
 * restarts from its checkpoint.
 */
public final class BulkWriteFailed extends RuntimeException {
  private static final long serialVersionUID = 1L;

  BulkWriteFailed(String message, Throwable cause) {
    super(message, cause);
  }
}
