#!/usr/bin/env bash
# Resolve the S3Proxy jars used by the console's object-store tests.
#
# Downloads (via Maven, from Maven Central, through the default ~/.m2 cache)
# every runtime jar declared by tests/harness/s3proxy/pom.xml and copies them to
#
#     ${SHOAL_CACHE_DIR:-<repo>/.cache}/s3proxy/libs/
#
# (a relative SHOAL_CACHE_DIR is taken relative to the repository root, as in
# tests/harness/s3_server.py:default_libs_dir).
#
# Idempotent: a stamp file holding the pom's sha256 is written once the jars are
# in place; when it matches the current pom nothing is done. Editing the pom
# (e.g. bumping the S3Proxy version) triggers a fresh resolution.
#
# Usage: scripts/fetch-s3proxy.sh [--force]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pom="${repo_root}/tests/harness/s3proxy/pom.xml"

cache_dir="${SHOAL_CACHE_DIR:-${repo_root}/.cache}"
case "${cache_dir}" in
  /*) ;;
  *) cache_dir="${repo_root}/${cache_dir}" ;;
esac
s3proxy_dir="${cache_dir}/s3proxy"
libs_dir="${s3proxy_dir}/libs"
stamp="${libs_dir}/.pom.sha256"

force=0
for arg in "$@"; do
  case "${arg}" in
    --force) force=1 ;;
    -h|--help)
      sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) echo "fetch-s3proxy.sh: unknown argument: ${arg}" >&2; exit 2 ;;
  esac
done

fail() {
  echo "fetch-s3proxy.sh: $*" >&2
  exit 1
}

[[ -f "${pom}" ]] || fail "missing ${pom}"

hash_file() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

pom_hash="$(hash_file "${pom}")"

is_fresh() {
  [[ -f "${stamp}" ]] \
    && [[ "$(cat "${stamp}")" == "${pom_hash}" ]] \
    && compgen -G "${libs_dir}/s3proxy-*.jar" >/dev/null
}

if [[ "${force}" -eq 0 ]] && is_fresh; then
  echo "S3Proxy jars up to date in ${libs_dir}"
  exit 0
fi

mkdir -p "${s3proxy_dir}"

# Serialise concurrent runs (e.g. parallel test jobs) when flock is available.
if command -v flock >/dev/null 2>&1; then
  exec 9>"${s3proxy_dir}/.fetch.lock"
  flock 9
  if [[ "${force}" -eq 0 ]] && is_fresh; then
    echo "S3Proxy jars up to date in ${libs_dir}"
    exit 0
  fi
fi

if ! command -v mvn >/dev/null 2>&1; then
  fail "could not resolve S3Proxy jars from Maven Central: is mvn installed and the network reachable? ('mvn' is not on PATH; install Maven, e.g. 'apt-get install maven')"
fi

tmp_dir="$(mktemp -d "${s3proxy_dir}/libs.tmp.XXXXXX")"
mvn_log="${s3proxy_dir}/fetch.log"
cleanup() { rm -rf "${tmp_dir}"; }
trap cleanup EXIT

show_mvn_log() {
  # Last lines of Maven's output, without the ANSI colour codes it emits.
  tail -n 40 "${mvn_log}" | sed $'s/\x1b\\[[0-9;]*m//g' >&2 || true
}

echo "Resolving S3Proxy jars from Maven Central into ${libs_dir} ..."
if ! mvn -B -q -Dstyle.color=never -f "${pom}" \
      dependency:copy-dependencies \
      -DoutputDirectory="${tmp_dir}" \
      -DincludeScope=runtime \
      >"${mvn_log}" 2>&1; then
  show_mvn_log
  fail "could not resolve S3Proxy jars from Maven Central: is mvn installed and the network reachable? (full Maven output: ${mvn_log})"
fi

if ! compgen -G "${tmp_dir}/s3proxy-*.jar" >/dev/null; then
  show_mvn_log
  fail "could not resolve S3Proxy jars from Maven Central: is mvn installed and the network reachable? (Maven succeeded but no s3proxy jar was copied; see ${mvn_log})"
fi

chmod 755 "${tmp_dir}"
printf '%s\n' "${pom_hash}" >"${tmp_dir}/.pom.sha256"
rm -rf "${libs_dir}"
mv "${tmp_dir}" "${libs_dir}"
trap - EXIT

echo "S3Proxy jars ready: $(find "${libs_dir}" -maxdepth 1 -name '*.jar' | wc -l) jars in ${libs_dir}"
