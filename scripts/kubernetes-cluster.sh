#!/usr/bin/env bash
# Starts and stops the loopback control plane that scripts/ensure-kubernetes.sh builds; called by it:
#
#   kubernetes-cluster.sh start RUNDIR BINDIR "ETCD_CLIENT_PORT ETCD_PEER_PORT ETCD_METRICS_PORT" API_PORT KWOK_MODULE_DIR
#   kubernetes-cluster.sh stop RUNDIR
#
# `start` writes certificates, etcd's data, logs and pid files under RUNDIR, and RUNDIR/kubeconfig (an
# administrator of the cluster). It returns once the API server is ready, the simulated node `kwok-node-0`
# is Ready and the `default` ServiceAccount exists. Job Pods on that node run and succeed; a Pod annotated
# `kwok.x-k8s.io/fail: "true"` fails with exit code 1, and one annotated `kwok.x-k8s.io/hold: "true"` stays
# Running until that annotation is removed. `stop` ends only the processes RUNDIR's pid files
# name, the newest first.
set -euo pipefail

action="$1"
run="$2"
say() { echo "[kubernetes-cluster $(date +%T)] $*" >&2; }

stop() {
  local name pid
  for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [ -f "$run/$name.pid" ] || continue
    pid=$(cat "$run/$name.pid")
    if kill -0 "$pid" 2> /dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2> /dev/null && kill -KILL "$pid"
    fi
    rm -f "$run/$name.pid"
  done
}

if [ "$action" = stop ]; then
  stop
  exit 0
fi

bin="$3"
read -r etcd_port peer_port metrics_port <<< "$4"
api_port="$5"
kwok_module="$6"
for c in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
  [ -x "$bin/$c" ] || { say "$bin/$c is missing: run scripts/ensure-kubernetes.sh build first"; exit 1; }
done
mkdir -p "$run/logs" "$run/pki"
pki="$run/pki"
kubeconfig="$run/kubeconfig"
api="https://127.0.0.1:$api_port"

# -- certificates: a CA, the API server's serving certificate, an administrator's client certificate, and
#    the key pair that signs ServiceAccount tokens
certificates() {
  [ -f "$pki/admin.crt" ] && return
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -subj "/CN=shoal-test-ca" -days 3650 -out ca.crt 2> /dev/null
  cat > server.ext << 'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1
EOF
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -subj "/CN=kube-apiserver" -out apiserver.csr 2> /dev/null
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile server.ext \
    -out apiserver.crt 2> /dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' > client.ext
  openssl req -newkey rsa:2048 -nodes -keyout admin.key -subj "/O=system:masters/CN=shoal-test-admin" -out admin.csr 2> /dev/null
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile client.ext \
    -out admin.crt 2> /dev/null
  openssl genrsa -out sa.key 2048 2> /dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2> /dev/null
  cd - > /dev/null
}

write_kubeconfig() {
  local ca crt key
  ca=$(base64 -w0 < "$pki/ca.crt")
  crt=$(base64 -w0 < "$pki/admin.crt")
  key=$(base64 -w0 < "$pki/admin.key")
  cat > "$kubeconfig" << EOF
apiVersion: v1
kind: Config
clusters:
- name: shoal-test
  cluster: {server: "$api", certificate-authority-data: "$ca"}
users:
- name: admin
  user: {client-certificate-data: "$crt", client-key-data: "$key"}
contexts:
- name: shoal-test
  context: {cluster: shoal-test, user: admin, namespace: default}
current-context: shoal-test
EOF
}

# spawn NAME COMMAND...: in a session of its own, its pid in RUNDIR/NAME.pid, its output in RUNDIR/logs/NAME.log
spawn() {
  local name="$1"
  shift
  if [ -f "$run/$name.pid" ] && kill -0 "$(cat "$run/$name.pid")" 2> /dev/null; then
    return
  fi
  (cd "$run" && exec setsid bash -c 'echo $$ > "$0.pid"; exec "$@"' "$name" "$@") > "$run/logs/$name.log" 2>&1 < /dev/null &
  for _ in $(seq 50); do [ -f "$run/$name.pid" ] && return; sleep 0.1; done
}

# until WHAT PID_NAME COMMAND...: polls COMMAND until it succeeds; fails at once when PID_NAME's process has
# ended (quoting its log), and after a generous bound otherwise
until_ready() {
  local what="$1" name="$2"
  shift 2
  local start=$SECONDS
  until "$@" > /dev/null 2>&1; do
    if [ -f "$run/$name.pid" ] && ! kill -0 "$(cat "$run/$name.pid")" 2> /dev/null; then
      say "$name ended before $what; the end of its log:"
      tail -20 "$run/logs/$name.log" >&2
      exit 1
    fi
    if ((SECONDS - start > 600)); then
      say "no $what after 600 s; the end of $name's log:"
      tail -20 "$run/logs/$name.log" >&2
      exit 1
    fi
    sleep 0.25
  done
}

curl_api() {
  curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"
}

stages() {
  # kwok's fast stages for nodes and pods, except that a Job Pod annotated kwok.x-k8s.io/fail=true fails
  local f dir="$kwok_module/kustomize/stage"
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease pod/fast/pod-ready \
    pod/fast/pod-complete pod/fast/pod-delete; do
    echo "---"
    if [ "$f" = pod/fast/pod-complete ]; then
      # ... and one annotated kwok.x-k8s.io/hold=true stays Running until the annotation is removed (a test
      # runs the Pod's work meanwhile)
      awk '{print} /^      - .Job.$/ {
        for (i = 1; i <= 2; i++) {
          print "    - key: '"'"'.metadata.annotations[\"kwok.x-k8s.io/" (i == 1 ? "fail" : "hold") "\"]'"'"'"
          print "      operator: '"'"'DoesNotExist'"'"'"
        }
      }' "$dir/$f.yaml"
    else
      cat "$dir/$f.yaml"
    fi
  done
  cat << 'EOF'
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-fail
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: 'DoesNotExist'}
    - {key: '.status.phase', operator: 'In', values: ['Running']}
    - {key: '.metadata.annotations["kwok.x-k8s.io/fail"]', operator: 'In', values: ['true']}
  next:
    statusTemplate: |
      {{ $now := Now }}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 1
            finishedAt: {{ $now | Quote }}
            reason: Error
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Failed
EOF
}

certificates
write_kubeconfig
mkdir -p "$run/etcd"
spawn etcd "$bin/etcd" --name shoal-test --data-dir "$run/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "shoal-test=http://127.0.0.1:$peer_port" \
  --listen-metrics-urls "http://127.0.0.1:$metrics_port" --unsafe-no-fsync --log-level warn
until_ready "a healthy etcd" etcd curl -sf "http://127.0.0.1:$etcd_port/health"
spawn kube-apiserver "$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --client-ca-file="$pki/ca.crt" \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range=10.0.0.0/24 --authorization-mode=Node,RBAC --allow-privileged=true \
  --endpoint-reconciler-type=none --profiling=false --v=1
until_ready "a ready API server" kube-apiserver curl_api "$api/readyz"
spawn kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$kubeconfig" \
  --authentication-kubeconfig="$kubeconfig" --authorization-kubeconfig="$kubeconfig" --secure-port=0 \
  --leader-elect=false --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" --v=1
spawn kube-scheduler "$bin/kube-scheduler" --kubeconfig="$kubeconfig" --authentication-kubeconfig="$kubeconfig" \
  --authorization-kubeconfig="$kubeconfig" --secure-port=0 --leader-elect=false --v=1
stages > "$run/kwok-stages.yaml"
spawn kwok "$bin/kwok" --kubeconfig="$kubeconfig" --config="$run/kwok-stages.yaml" --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake --node-lease-duration-seconds=40 \
  --cidr=10.0.1.0/24 --node-ip=10.0.0.2 --node-port=0
node='{"apiVersion":"v1","kind":"Node","metadata":{"name":"kwok-node-0","annotations":{"node.alpha.kubernetes.io/ttl":"0","kwok.x-k8s.io/node":"fake"},"labels":{"kubernetes.io/arch":"amd64","kubernetes.io/hostname":"kwok-node-0","kubernetes.io/os":"linux","type":"kwok"}},"status":{"allocatable":{"cpu":"32","memory":"256Gi","pods":"110"},"capacity":{"cpu":"32","memory":"256Gi","pods":"110"}}}'
curl_api "$api/api/v1/nodes/kwok-node-0" > /dev/null \
  || curl_api -X POST -H "Content-Type: application/json" --data "$node" "$api/api/v1/nodes" > /dev/null
node_ready() {
  curl_api "$api/api/v1/nodes/kwok-node-0" | python3 -c \
    'import json, sys; c = json.load(sys.stdin)["status"].get("conditions", []); sys.exit(not any(x["type"] == "Ready" and x["status"] == "True" for x in c))'
}
until_ready "a Ready node" kwok node_ready
until_ready "the default ServiceAccount" kube-controller-manager curl_api "$api/api/v1/namespaces/default/serviceaccounts/default"
say "cluster ready: KUBECONFIG=$kubeconfig"
