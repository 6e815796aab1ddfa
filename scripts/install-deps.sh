#!/usr/bin/env bash
# Installs what the project needs on a fresh machine (Debian, as root). Idempotent.
set -euo pipefail
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v tc >/dev/null 2>&1 || need+=(iproute2)
# DejaVu Sans labels the PNG plots of `quiver bench classes` (it draws without text if absent).
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# valgrind (callgrind) runs `quiver bench instructions` (instruction counts of the hot paths).
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
# python3 + venv: aioquic, the second real QUIC peer of crates/quiver/tests/aioquic_interop.rs.
PY=/usr/bin/python3
[ -x "$PY" ] || need+=(python3)
{ [ -x "$PY" ] && "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; } || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: installing ${need[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "install-deps: missing ${need[*]} (not root or no apt-get); namespace tests skip, bench instructions and the aioquic interop tests fail" >&2
  fi
fi

# aioquic from PyPI in a venv (QUIVER_VENV, default /opt/quiver-venv), pinned. Re-runs only
# check the import; the tests find the interpreter at $QUIVER_VENV/bin/python (or
# QUIVER_AIOQUIC_PYTHON) and fail, naming this script, when it is missing.
AIOQUIC_VERSION=1.7.2
VENV=${QUIVER_VENV:-/opt/quiver-venv}
if ! "$VENV/bin/python" -c "import sys, importlib.metadata as m; sys.exit(m.version('aioquic') != '$AIOQUIC_VERSION')" >/dev/null 2>&1; then
  echo "install-deps: creating $VENV with aioquic $AIOQUIC_VERSION"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "aioquic==$AIOQUIC_VERSION"
fi

# The official openai client in the same venv, pinned: crates/quiver-cli/tests/serve_openai.rs
# runs it against `quiver serve frontend` ($QUIVER_OPENAI_PYTHON overrides the interpreter).
OPENAI_VERSION=3.63.0
if ! "$VENV/bin/python" -c "import sys, importlib.metadata as m; sys.exit(m.version('openai') != '$OPENAI_VERSION')" >/dev/null 2>&1; then
  echo "install-deps: installing openai $OPENAI_VERSION into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "openai==$OPENAI_VERSION"
fi
