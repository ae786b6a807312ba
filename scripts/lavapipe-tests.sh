#!/usr/bin/env bash
# The loss and primitive tests on burn-wgpu, with and without fusion, over Mesa's lavapipe (a
# CPU Vulkan driver): CubeBackend, Fusion<CubeBackend> and the fused CubeCL kernel exercised on a
# machine without a GPU. Installs the driver (Debian's mesa-vulkan-drivers) when it is missing.
# Not part of `.ci/run`: the wgpu build adds about 10 minutes on two cores.
#
#   bash scripts/lavapipe-tests.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
    echo "==> installing Mesa's lavapipe (mesa-vulkan-drivers)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1
fi
# The Vulkan loader complains on every test without a runtime directory.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# Only the CPU driver, so that a machine with a GPU still tests lavapipe here.
export VK_ICD_FILENAMES
VK_ICD_FILENAMES=$(ls /usr/share/vulkan/icd.d/lvp_icd*.json | head -n 1)

echo "==> the loss on Wgpu and Fusion<Wgpu>: fused kernel vs portable, collapse, f64 refusal"
cargo test -p slingshot-loss --features wgpu --test wgpu -- --test-threads 1
echo "==> every primitive in generic code on Autodiff<Wgpu> and Autodiff<Fusion<Wgpu>>"
cargo test -p slingshot-tests --features wgpu --test backend_coverage -- --test-threads 1
echo "==> lavapipe tests passed"
