#!/usr/bin/env bash
# Configures and builds Atrium (Release, Ninja, ccache) into build/.
# Extra arguments go to cmake, e.g. scripts/build.sh -DATRIUM_SANITIZE=ON.
# BUILD_DIR picks another folder.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} "$@" >/dev/null
ninja -C "$BUILD_DIR" ${BUILD_TARGETS:-}
