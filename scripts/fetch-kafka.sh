#!/usr/bin/env bash
# Resolves the Apache Kafka broker jars of the integration tests (tests/harness/kafka/pom.xml) into
# ${SHOAL_CACHE_DIR:-<repo>/.cache}/kafka/libs/, as tests/harness/kafka_broker.py reads them.
# Usage: scripts/fetch-kafka.sh [--force]
exec bash "$(dirname "${BASH_SOURCE[0]}")/fetch-maven-jars.sh" kafka kafka_2.13 Kafka "$@"
