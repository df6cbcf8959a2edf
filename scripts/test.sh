#!/usr/bin/env bash
# Runs xent's tests. Installs the software Vulkan and GL drivers first where it can, so that the
# GPU tests run on lavapipe (Vulkan) and llvmpipe (GL) on a machine with no GPU.
#
# Release mode: the suite pushes batches of over 128 MiB through the float64 reference and
# through the kernels on a software GPU; in a debug build that takes minutes instead of seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! scripts/install-gpu-drivers.sh; then
    echo "test.sh: no software GPU drivers; GPU tests will be skipped unless XENT_REQUIRE_GPU=1" >&2
fi
# Without a desktop session, Mesa's device_select Vulkan layer prints an XDG_RUNTIME_DIR error
# each time a test opens Vulkan; the layer only reorders devices (see docs/engines.md).
if [[ -z "${XDG_RUNTIME_DIR:-}" ]]; then
    export NODEVICE_SELECT="${NODEVICE_SELECT:-1}"
fi
cargo test --release --locked "$@"
