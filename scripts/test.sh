#!/usr/bin/env bash
# The whole test suite: setup (idempotent), build, every ctest test (the
# `model` label on the real files included), then the file-format tests again
# under AddressSanitizer + UndefinedBehaviorSanitizer.
#   scripts/test.sh          everything
#   scripts/test.sh -L cpu   only the fast unit tests (no real models), no sanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
export ATRIUM_REQUIRE_MODELS=1
ctest --test-dir build --output-on-failure -j2 "$@"
if [[ $# -eq 0 ]]; then
  echo "== sanitizer pass (ASan + UBSan): file-format parsers on corrupt input =="
  BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo \
    BUILD_TARGETS="gguf_test gguf_malformed_test safetensors_test hf_config_test" \
    scripts/build.sh -DATRIUM_SANITIZE=ON -DATRIUM_CUDA=OFF
  ctest --test-dir build-asan --output-on-failure -R 'gguf_test|gguf_malformed_test|safetensors_test|hf_config_test'
fi
