#!/usr/bin/env bash
# Installs what Kiln needs to build and test: Debian packages (apt) and the
# project virtualenv .venv with pinned PyPI packages. Idempotent and quiet:
# it does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  clang-14 libclang-rt-14-dev
  protobuf-compiler libprotobuf-dev
  libfmt-dev libspdlog-dev libcli11-dev
  libgtest-dev libgmock-dev
  libre2-dev libfreeimage-dev libtiff-dev
  libdnnl-dev libflatbuffers-dev flatbuffers-compiler
  libboost-dev libgrpc++-dev protobuf-compiler-grpc rapidjson-dev zlib1g-dev
  libbenchmark-dev
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv || { echo "setup: python venv failed; install python3-venv" >&2; exit 1; }
fi
# Reinstall only when requirements.txt changed.
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python packages (requirements.txt)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
