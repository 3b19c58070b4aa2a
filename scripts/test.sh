#!/usr/bin/env bash
# The whole test suite: setup (idempotent), build, every ctest test (the
# `model` label on the real files included), then the parsers of untrusted
# input (GGUF, safetensors, config.json, tokenizers, chat templates) and the
# kernels, model code, the packed-weight cache files and the engine (KV pool,
# prefix cache, scheduler, and the engine itself on the real SmolLM2, with a
# thousand random cancellations, and the worker's reading of public requests
# and its error details) again
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
  echo "== sanitizer pass (ASan + UBSan): parsers on corrupt input, kernels, models =="
  ASAN_TESTS="gguf_test gguf_malformed_test safetensors_test hf_config_test tokenizer_test chat_template_test
              quant_test float_ops_test ops_test model_test hf_checkpoint_test sampler_test
              kv_pool_test prefix_cache_test scheduler_test thread_pool_test packed_cache_test
              engine_model_test request_test rpc_status_test"
  BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo BUILD_TARGETS="$ASAN_TESTS" \
    scripts/build.sh -DATRIUM_SANITIZE=ON -DATRIUM_CUDA=OFF
  ctest --test-dir build-asan --output-on-failure -R "^($(echo $ASAN_TESTS | tr ' ' '|'))\$"
fi
