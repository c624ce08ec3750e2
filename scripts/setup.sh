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
  wrk
  libtorch-dev  # the PyTorch backend's plugin (src/server/torch_plugin); the build skips it without
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

# The Triton oracle of tests/python/test_triton_diff.py: the real tritonserver (2.51) with its
# Python backend, from PyPI's nvidia-pytriton wheel, in .triton/. Its backend stub embeds the
# base interpreter of .venv and needs numpy < 2, so it gets a venv of its own (.triton/venv).
# Where no stub fits this Python, .triton/SKIP says why and the differential tests skip (a failed
# download is retried by the next run).
TRITON_WANT="nvidia-pytriton==0.7.0 numpy==1.26.4"
if [ ! -f .triton/.stamp ] || [ "$(cat .triton/.stamp)" != "$TRITON_WANT" ]; then
  echo "setup: installing the Triton oracle (.triton: $TRITON_WANT)"
  rm -rf .triton && mkdir -p .triton
  pyver=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  base=$(.venv/bin/python -c 'import sys; print(getattr(sys, "_base_executable", "") or sys.executable)')
  libdir=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))")
  tt=.triton/pkg/pytriton/tritonserver
  skip=""
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target .triton/pkg \
    "${TRITON_WANT%% *}" >/dev/null || skip="pip could not install ${TRITON_WANT%% *}"
  if [ -z "$skip" ] && [ ! -x "$tt/python_backend_stubs/$pyver/triton_python_backend_stub" ]; then
    skip="nvidia-pytriton has no Python backend stub for Python $pyver"
  elif [ -z "$skip" ] && [ ! -e "$libdir/libpython$pyver.so.1.0" ]; then
    skip="the Python backend stub needs a shared libpython$pyver.so.1.0, which $libdir lacks"
  fi
  if [ -z "$skip" ]; then
    "$base" -m venv .triton/venv &&
      .triton/venv/bin/python -m pip install -q --disable-pip-version-check --only-binary=:all: "${TRITON_WANT#* }" \
        >/dev/null ||
      skip="could not make .triton/venv with ${TRITON_WANT#* } for Python $pyver"
  fi
  if [ -z "$skip" ]; then
    cp "$tt/python_backend_stubs/$pyver/triton_python_backend_stub" "$tt/backends/python/"
    printf '{"tritonserver": "%s", "backends": "%s", "path": "%s", "ld_library_path": "%s"}\n' \
      "$PWD/$tt/bin/tritonserver" "$PWD/$tt/backends" "$PWD/.triton/venv/bin" "$libdir" > .triton/oracle.json
  else
    echo "setup: note: $skip; the differential tests against Triton will skip"
    echo "$skip" > .triton/SKIP
    rm -rf .triton/pkg .triton/venv
  fi
  case "$skip" in pip*) ;; *) echo "$TRITON_WANT" > .triton/.stamp ;; esac
fi
