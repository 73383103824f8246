#!/usr/bin/env bash
# Makes sure Java 17+ and Maven are present for the Kafka broker of the integration tests.
# Installs them with apt-get when missing and running as root on Debian; otherwise says how.
set -euo pipefail

java_ok() {
  command -v java >/dev/null 2>&1 || return 1
  local v
  v="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
  [[ -n "$v" && "$v" -ge 17 ]]
}

if java_ok && command -v mvn >/dev/null 2>&1; then
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-java.sh: installing Java 17 and Maven with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven >/dev/null
  java_ok && command -v mvn >/dev/null 2>&1 && exit 0
fi
echo "ensure-java.sh: the Kafka broker of the tests needs Java 17+ and Maven on PATH;" \
     "install them (Debian: apt-get install openjdk-17-jre-headless maven)" >&2
exit 1
