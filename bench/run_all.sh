#!/usr/bin/env bash
# Every bench of bench/README.md's results table, one after another on one commit, each one's
# output kept in OUT (default /tmp/ccengine-bench-<commit>). About 40 minutes on 2 cores; run
# it on a machine doing nothing else (the ratios are measured within each bench's own run, but
# a busy machine still widens them).
#
#     bash bench/run_all.sh [OUT]
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
COMMIT=$(git rev-parse --short HEAD)
DIRTY=$(git status --porcelain --untracked-files=no | grep -q . && echo " (uncommitted changes)")
OUT=${1:-/tmp/ccengine-bench-$COMMIT}
mkdir -p "$OUT"
{
    echo "commit $COMMIT$DIRTY"
    date -u +"started %Y-%m-%d %H:%M UTC"
    echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
    $PY --version
} | tee "$OUT/00-machine.txt"

failed=0
run() {
    local name=$1
    shift
    echo "== $name: $*" | tee "$OUT/$name.txt"
    local start=$SECONDS
    "$PY" "$@" 2>&1 | tee -a "$OUT/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/$name.txt"
    [ "$rc" -eq 0 ] || failed=1
}

run agi bench/agi.py --rounds 6
run ami bench/ami.py
run inproc bench/inproc_hotline.py
run scaleout bench/scaleout.py
run takeover bench/takeover.py --rounds 20
run centre bench/centre.py
run centre-small bench/centre.py --agents 200 --waiting 30 --login-rate 0
run ami_real bench/ami_real.py
run memory bench/memory.py
date -u +"finished %Y-%m-%d %H:%M UTC" | tee -a "$OUT/00-machine.txt"
grep -h "PASS\|FAIL" "$OUT"/*.txt > "$OUT/verdicts.txt"
echo "verdicts: $OUT/verdicts.txt"
exit $failed
