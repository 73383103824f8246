#!/usr/bin/env bash
# A real Kubernetes control plane for the tests of the chart and of the Kubernetes job executor:
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler, with kwok's simulated node on
# which Pods start and Job Pods complete. Built from the Go module proxy (no release downloads).
#
#   scripts/ensure-kubernetes.sh build        # once per machine: about 25 CPU-minutes cold, seconds after
#   scripts/ensure-kubernetes.sh start RUNDIR  # start on loopback, write RUNDIR/kubeconfig, wait for the node
#   scripts/ensure-kubernetes.sh stop RUNDIR   # stop what `start RUNDIR` started (its pid files only)
#
# The binaries go to ${SHOAL_TOOLS_DIR:-~/.cache/shoal-tools}/kubernetes-<versions>/bin, outside the work
# tree, so that a machine pays the build once whatever the clone. Ports on the loopback, from the environment:
# SHOAL_K8S_API_PORT (default 16443), and etcd's SHOAL_K8S_ETCD_PORTS, "client peer metrics" (default
# "23790 23791 23792").
set -euo pipefail

K8S_VERSION=1.34.4
ETCD_VERSION=3.6.16
KWOK_VERSION=0.8.0

tools="${SHOAL_TOOLS_DIR:-$HOME/.cache/shoal-tools}"
home="$tools/kubernetes-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
bin="$home/bin"
export GOMODCACHE="${GOMODCACHE:-$tools/go/mod}" GOCACHE="${GOCACHE:-$tools/go/build}" GOFLAGS=-buildvcs=false
etcd_ports="${SHOAL_K8S_ETCD_PORTS:-23790 23791 23792}"
api_port="${SHOAL_K8S_API_PORT:-16443}"

say() { echo "[ensure-kubernetes $(date +%T)] $*" >&2; }

need_go() {
  command -v go > /dev/null || { say "Go is needed to build the control plane (apt-get install golang, or https://go.dev)"; exit 1; }
}

# -- build ------------------------------------------------------------------------------------------------------
build_etcd() {
  [ -x "$bin/etcd" ] && return
  say "building etcd $ETCD_VERSION"
  local work="$home/src/etcd"
  mkdir -p "$work" && cd "$work"
  # the etcd server module replaces its sibling modules by relative paths, which `go install pkg@version`
  # refuses; a module of our own that requires them all builds the server package instead
  printf 'module shoal.local/etcd\n\ngo 1.24\n' > go.mod
  local mods="server api client/pkg client/v3 pkg"
  local m args=()
  for m in $mods; do
    case "$m" in client/v3) args+=("go.etcd.io/etcd/client/v3@v$ETCD_VERSION") ;;
                 *) args+=("go.etcd.io/etcd/$m/v3@v$ETCD_VERSION") ;; esac
  done
  go get "${args[@]}"
  go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
}

build_kubernetes() {
  local c missing=0
  for c in kube-apiserver kube-controller-manager kube-scheduler; do [ -x "$bin/$c" ] || missing=1; done
  [ "$missing" = 0 ] && return
  say "building kube-apiserver, kube-controller-manager and kube-scheduler $K8S_VERSION"
  local work="$home/src/kubernetes" minor="${K8S_VERSION#1.}"
  minor="${minor%%.*}"
  mkdir -p "$work" && cd "$work"
  go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" > /dev/null
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them by ./staging paths; our module
  # replaces each by its published release instead (v0.<minor>.<patch>)
  local staged
  staged=$(awk '/^replace \(/{inside=1; next} inside && /^\)/{inside=0} inside && /=>/{print $1}' \
    "$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/v$K8S_VERSION.mod")
  {
    printf 'module shoal.local/kubernetes\n\ngo 1.24.0\n\ngodebug default=go1.24\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$K8S_VERSION"
    for m in $staged; do printf '\t%s => %s v0.%s\n' "$m" "$m" "${K8S_VERSION#1.}"; done
    printf ')\n'
  } > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n)\n' > tools.go
  go mod tidy
  # the version a server reports (charts with a kubeVersion constraint check it)
  local v=k8s.io/component-base/version
  local flags="-s -w -X $v.gitVersion=v$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    [ -x "$bin/$c" ] || go build -trimpath -ldflags "$flags" -o "$bin/$c" "k8s.io/kubernetes/cmd/$c"
  done
}

build_kwok() {
  if [ ! -x "$bin/kwok" ]; then
    say "building kwok $KWOK_VERSION"
    GOBIN="$bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  fi
  # the start reads kwok's stages from its module's source
  [ -d "$GOMODCACHE/sigs.k8s.io/kwok@v$KWOK_VERSION" ] || (cd "$home" && go mod download "sigs.k8s.io/kwok@v$KWOK_VERSION")
}

build() {
  local c ready=1
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do [ -x "$bin/$c" ] || ready=0; done
  if [ "$ready" = 1 ] && [ -d "$GOMODCACHE/sigs.k8s.io/kwok@v$KWOK_VERSION" ]; then
    return
  fi
  need_go
  mkdir -p "$bin"
  local started=$SECONDS
  build_etcd
  build_kubernetes
  build_kwok
  say "control plane binaries ready in $bin ($((SECONDS - started))s)"
}

case "${1:-}" in
  build) build ;;
  start|stop)
    [ -n "${2:-}" ] || { echo "usage: $0 $1 RUNDIR" >&2; exit 2; }
    exec "$(dirname "${BASH_SOURCE[0]}")/kubernetes-cluster.sh" "$1" "$2" "$bin" "$etcd_ports" "$api_port" "$GOMODCACHE/sigs.k8s.io/kwok@v$KWOK_VERSION"
    ;;
  *) echo "usage: $0 build | start RUNDIR | stop RUNDIR" >&2; exit 2 ;;
esac
