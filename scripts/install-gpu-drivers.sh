#!/usr/bin/env bash
# Installs Mesa's software drivers when they are missing: lavapipe (a Vulkan driver that runs on
# the CPU, package mesa-vulkan-drivers) and llvmpipe behind EGL for wgpu's GL backend. Exits
# non-zero when they are missing and cannot be installed.
set -euo pipefail

have_drivers() {
    compgen -G "/usr/share/vulkan/icd.d/lvp_icd*.json" >/dev/null \
        && ldconfig -p | grep -q "libvulkan.so.1" \
        && ldconfig -p | grep -q "libEGL_mesa.so"
}

if have_drivers; then
    exit 0
fi
packages=(mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0 libgl1-mesa-dri)
sudo=()
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "install-gpu-drivers: not root and no sudo; install ${packages[*]} by hand" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null; then
    echo "install-gpu-drivers: no apt-get here; install Mesa's lavapipe (Vulkan) and EGL drivers by hand" >&2
    exit 1
fi
echo "install-gpu-drivers: installing ${packages[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}"
have_drivers
