#!/usr/bin/env bash
# The analysis jobs' compiled kernels, into numba's disk cache of this checkout's venv, once per venv: what an
# image's build step does with `shoal warm-up`. Without it the first job of each process compiles them (about a
# CPU-minute), and the tests, several processes at once, each compile the same kernels.
#
#   warm-kernels.sh start   compiles them in the background (while the rest of the set-up downloads), unless
#                           this venv's kernels were compiled already or are compiling now
#   warm-kernels.sh wait    waits until that is done; a failed compilation is reported, not fatal (the kernels
#                           then compile on first use, as they would without this step)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
mkdir -p .cache
LOCK=.cache/kernels.lock
LOG=.cache/kernels.log
DONE="$VENV/.kernels-compiled"

case "${1:-}" in
start)
    if [[ -e "$DONE" ]]; then
        exit 0
    fi
    # Locked here, before the background job starts: a `wait` run at once still waits for it. The job inherits
    # the lock and holds it until it ends.
    exec 9>"$LOCK"
    if ! flock -n 9; then
        exit 0 # compiling already
    fi
    echo "Compiling the analysis kernels into numba's disk cache in the background (log: $LOG) ..."
    (
        if "$VENV/bin/shoal" warm-up >"$LOG" 2>&1; then
            touch "$DONE"
        fi
    ) </dev/null >/dev/null 2>&1 &
    exec 9>&-
    ;;
wait)
    # bounded: a compilation that hangs must not hold the tests back (they compile what they need themselves)
    if ! flock -w "${SHOAL_KERNELS_WAIT_SECONDS:-900}" "$LOCK" true; then
        echo "warm-kernels: still compiling after ${SHOAL_KERNELS_WAIT_SECONDS:-900} s; going on without waiting (log: $LOG)" >&2
        exit 0
    fi
    if [[ -e "$DONE" ]]; then
        tail -n 1 "$LOG" 2>/dev/null || true
    elif [[ -e "$LOG" ]]; then
        echo "warm-kernels: compiling the kernels ahead failed; they compile on first use instead. Last lines of $LOG:" >&2
        tail -n 20 "$LOG" >&2
    fi
    ;;
*)
    echo "usage: $0 start|wait" >&2
    exit 2
    ;;
esac
