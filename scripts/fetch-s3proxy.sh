#!/usr/bin/env bash
# Resolves the S3Proxy jars of the console's object-store tests (tests/harness/s3proxy/pom.xml) into
# ${SHOAL_CACHE_DIR:-<repo>/.cache}/s3proxy/libs/, as tests/harness/s3_server.py reads them.
# Usage: scripts/fetch-s3proxy.sh [--force]
exec bash "$(dirname "${BASH_SOURCE[0]}")/fetch-maven-jars.sh" s3proxy s3proxy S3Proxy "$@"
