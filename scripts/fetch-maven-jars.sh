#!/usr/bin/env bash
# Resolves the runtime jars of a Maven project that a test harness runs with the machine's Java.
#
# Downloads (via Maven, from Maven Central, through the default ~/.m2 cache) every runtime jar
# declared by tests/harness/NAME/pom.xml and copies them to
#
#     ${SHOAL_CACHE_DIR:-<repo>/.cache}/NAME/libs/
#
# (a relative SHOAL_CACHE_DIR is taken relative to the repository root, as the harnesses read it).
#
# Idempotent: a stamp file holding the pom's sha256 is written once the jars are in place; when it
# matches the current pom nothing is done. Editing the pom (e.g. bumping a version) triggers a fresh
# resolution.
#
# Usage: scripts/fetch-maven-jars.sh NAME MAIN_JAR LABEL [--force]
#   NAME      folder of the pom under tests/harness/ and of the jars under the cache
#   MAIN_JAR  file name prefix of the jar that must be among them (kafka_2.13, s3proxy)
#   LABEL     what the jars are, for messages (Kafka, S3Proxy)
set -euo pipefail

[[ $# -ge 3 ]] || { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
name="$1"
main_jar="$2"
label="$3"
shift 3
script="fetch-${name}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pom="${repo_root}/tests/harness/${name}/pom.xml"

cache_dir="${SHOAL_CACHE_DIR:-${repo_root}/.cache}"
case "${cache_dir}" in
  /*) ;;
  *) cache_dir="${repo_root}/${cache_dir}" ;;
esac
tool_dir="${cache_dir}/${name}"
libs_dir="${tool_dir}/libs"
stamp="${libs_dir}/.pom.sha256"

force=0
for arg in "$@"; do
  case "${arg}" in
    --force) force=1 ;;
    *) echo "${script}: unknown argument: ${arg}" >&2; exit 2 ;;
  esac
done

fail() {
  echo "${script}: $*" >&2
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
    && compgen -G "${libs_dir}/${main_jar}-*.jar" >/dev/null
}

if [[ "${force}" -eq 0 ]] && is_fresh; then
  echo "${label} jars up to date in ${libs_dir}"
  exit 0
fi

mkdir -p "${tool_dir}"

# Serialise concurrent runs (e.g. parallel test jobs) when flock is available.
if command -v flock >/dev/null 2>&1; then
  exec 9>"${tool_dir}/.fetch.lock"
  flock 9
  if [[ "${force}" -eq 0 ]] && is_fresh; then
    echo "${label} jars up to date in ${libs_dir}"
    exit 0
  fi
fi

if ! command -v mvn >/dev/null 2>&1; then
  fail "could not resolve ${label} jars from Maven Central: is mvn installed and the network reachable? ('mvn' is not on PATH; install Maven, e.g. 'apt-get install maven')"
fi

tmp_dir="$(mktemp -d "${tool_dir}/libs.tmp.XXXXXX")"
mvn_log="${tool_dir}/fetch.log"
cleanup() { rm -rf "${tmp_dir}"; }
trap cleanup EXIT

show_mvn_log() {
  # Last lines of Maven's output, without the ANSI colour codes it emits.
  tail -n 40 "${mvn_log}" | sed $'s/\x1b\\[[0-9;]*m//g' >&2 || true
}

echo "Resolving ${label} jars from Maven Central into ${libs_dir} ..."
if ! mvn -B -q -Dstyle.color=never -f "${pom}" \
      dependency:copy-dependencies \
      -DoutputDirectory="${tmp_dir}" \
      -DincludeScope=runtime \
      >"${mvn_log}" 2>&1; then
  show_mvn_log
  fail "could not resolve ${label} jars from Maven Central: is mvn installed and the network reachable? (full Maven output: ${mvn_log})"
fi

if ! compgen -G "${tmp_dir}/${main_jar}-*.jar" >/dev/null; then
  show_mvn_log
  fail "could not resolve ${label} jars from Maven Central: is mvn installed and the network reachable? (Maven succeeded but no ${main_jar} jar was copied; see ${mvn_log})"
fi

chmod 755 "${tmp_dir}"
printf '%s\n' "${pom_hash}" >"${tmp_dir}/.pom.sha256"
rm -rf "${libs_dir}"
mv "${tmp_dir}" "${libs_dir}"
trap - EXIT

echo "${label} jars ready: $(find "${libs_dir}" -maxdepth 1 -name '*.jar' | wc -l) jars in ${libs_dir}"
