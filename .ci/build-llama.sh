#!/usr/bin/env bash
# Builds llama.cpp's llama-server and llama-bench once per machine, from the llama.cpp sources vendored in the
# PyPI source package of llama-cpp-python (a registry package; cmake and ninja come from PyPI too), and prints
# the folder holding the binaries. Takes about 10 minutes on 2 cores the first time; later calls return at once.
#   LLAMA_DIR   where to build (default ~/.cache/medbot/llama; outside any clone, so CI runs can reuse it)
# The remote-generator tests run medbot against it (tests/it/remote.rs builds it when missing).
# Usage: bin=$(.ci/build-llama.sh) && "$bin/llama-server" -m MODEL.gguf --port 8080
# AMX is compiled out: these machines' CPUs advertise AMX but the kernel does not enable it (SIGILL).
set -euo pipefail
D=${LLAMA_DIR:-$HOME/.cache/medbot/llama}
if [ ! -x "$D/build/bin/llama-server" ] || [ ! -x "$D/build/bin/llama-bench" ]; then
  mkdir -p "$D" && cd "$D"
  [ -x venv/bin/cmake ] || { python3 -m venv venv && venv/bin/pip install -q cmake ninja; } >&2
  ls sdist/llama_cpp_python-*.tar.gz >/dev/null 2>&1 ||
    python3 -m pip download -q --no-deps --no-binary llama-cpp-python llama-cpp-python -d sdist >&2
  [ -d src ] || { mkdir src && tar xzf sdist/llama_cpp_python-*.tar.gz -C src --strip-components=1; }
  flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  PATH=$D/venv/bin:$PATH cmake -S src/vendor/llama.cpp -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >&2
  PATH=$D/venv/bin:$PATH cmake --build build --target llama-server llama-bench -j"$(nproc)" >&2
fi
echo "$D/build/bin"
