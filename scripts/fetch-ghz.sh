#!/usr/bin/env bash
# Build ghz, the gRPC load tool the load benchmark drives (bench/load/bench_load.py), with the Go
# toolchain from the Go module proxy:
#
#     GOBIN=${SHOAL_CACHE_DIR:-<repo>/.cache}/ghz-bin go install github.com/bojand/ghz/cmd/ghz@<GHZ_VERSION>
#
# Idempotent: nothing is done when the binary is there and was built from the pinned version (a
# stamp file records it). Bump GHZ_VERSION to upgrade. Needs Go 1.23+ on PATH.
#
# Usage: scripts/fetch-ghz.sh [--force]
set -euo pipefail

GHZ_MODULE="github.com/bojand/ghz/cmd/ghz"
GHZ_VERSION="v0.121.0"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${SHOAL_CACHE_DIR:-${repo_root}/.cache}"
case "${cache_dir}" in
  /*) ;;
  *) cache_dir="${repo_root}/${cache_dir}" ;;
esac
bin_dir="${cache_dir}/ghz-bin"
stamp="${bin_dir}/.version"

force=0
for arg in "$@"; do
  case "${arg}" in
    --force) force=1 ;;
    -h|--help)
      sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) echo "fetch-ghz.sh: unknown argument: ${arg}" >&2; exit 2 ;;
  esac
done

if [[ "${force}" == 0 && -x "${bin_dir}/ghz" && -f "${stamp}" && "$(cat "${stamp}")" == "${GHZ_VERSION}" ]]; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "fetch-ghz.sh: the Go toolchain (1.23+) is needed to build ghz: install it and put 'go' on PATH" >&2
  exit 1
fi
mkdir -p "${bin_dir}"
echo "fetch-ghz.sh: building ${GHZ_MODULE}@${GHZ_VERSION} into ${bin_dir}"
GOBIN="${bin_dir}" GOFLAGS="${GOFLAGS:-} -trimpath" go install "${GHZ_MODULE}@${GHZ_VERSION}"
printf '%s\n' "${GHZ_VERSION}" > "${stamp}"
"${bin_dir}/ghz" --version >/dev/null 2>&1
echo "fetch-ghz.sh: ${bin_dir}/ghz is ready"
