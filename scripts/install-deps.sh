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
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: installing ${need[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "install-deps: missing ${need[*]} (not root or no apt-get); namespace tests skip, bench instructions fails" >&2
  fi
fi
