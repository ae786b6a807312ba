#!/usr/bin/env bash
# The GPU checks of the backends work, in one short device call.
#
#   bash scripts/gpu-checks.sh prepare    # here (no GPU needed): builds and strips into .gpu/
#   bash scripts/gpu-checks.sh run        # on the device, from the repository root, OUT=...
#
# `prepare` builds, with `--features cuda`: the loss's CUDA suite (f32, f64, bf16/f16, with and
# without fusion), the primitive coverage test (every primitive on Autodiff<Cuda> and
# Autodiff<Fusion<Cuda>>), and the loss bench (its three `ce_forward_backward/cuda/*` groups);
# and copies the PyTorch reference script. The device has no Rust toolchain, so the binaries
# travel (`carry: [".gpu"]`). `run` writes each result under $OUT and prints their tails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The executable a `cargo ... --no-run --message-format json` build produced for one target.
executable() {
    python3 -c '
import json, sys
name = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == name and m.get("executable"):
        print(m["executable"])
' "$1" | tail -n 1
}

prepare() {
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    mkdir -p .gpu
    local bin
    bin=$(cargo test -p slingshot-loss --features cuda --test cuda --no-run --message-format json | executable cuda)
    strip -o .gpu/cuda-tests "$bin"
    bin=$(cargo test -p slingshot-tests --features cuda --test backend_coverage --no-run --message-format json | executable backend_coverage)
    strip -o .gpu/coverage-tests "$bin"
    bin=$(cargo bench -p slingshot-benches --bench loss --features cuda --no-run --message-format json | executable loss)
    strip -o .gpu/loss-bench "$bin"
    cp benches/pytorch/cross_entropy.py .gpu/
    ls -la .gpu
}

run() {
    : "${OUT:?set OUT to the folder the results go to}"
    nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
    timeout 240 ./.gpu/cuda-tests --test-threads 1 > "$OUT/cuda-tests.txt" 2>&1 || echo "cuda-tests: exit $?" >> "$OUT/cuda-tests.txt"
    timeout 120 ./.gpu/coverage-tests --test-threads 1 > "$OUT/coverage-tests.txt" 2>&1 || echo "coverage-tests: exit $?" >> "$OUT/coverage-tests.txt"
    timeout 300 ./.gpu/loss-bench --bench cuda --warm-up-time 1 --measurement-time 3 > "$OUT/loss-bench.txt" 2>&1 || echo "loss-bench: exit $?" >> "$OUT/loss-bench.txt"
    timeout 120 python3 .gpu/cross_entropy.py --graph --json "$OUT/torch.json" > "$OUT/torch.txt" 2>&1 || echo "torch: exit $?" >> "$OUT/torch.txt"
    for f in cuda-tests coverage-tests loss-bench torch; do
        echo "== $f"; tail -25 "$OUT/$f.txt"
    done
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
