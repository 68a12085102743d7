#!/usr/bin/env bash
# Fails when include/switchboard.h differs from a fresh cbindgen generation (regenerate with
# `make header`). Exits 77 (skip) when the pinned cbindgen is not installed; `make test-c`
# installs it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PINNED="0.29.4"
CBINDGEN="${CBINDGEN:-}"
if [[ -z "$CBINDGEN" ]]; then
  if command -v cbindgen >/dev/null 2>&1; then
    CBINDGEN="$(command -v cbindgen)"
  elif [[ -x "$HOME/.cargo/bin/cbindgen" ]]; then
    CBINDGEN="$HOME/.cargo/bin/cbindgen"
  fi
fi
if [[ -z "$CBINDGEN" ]]; then
  echo "SKIP: cbindgen is not installed (cargo install cbindgen --version $PINNED --locked)"
  exit 77
fi
VERSION="$("$CBINDGEN" --version | awk '{print $2}')"
if [[ "$VERSION" != "$PINNED" ]]; then
  echo "SKIP: $CBINDGEN is cbindgen $VERSION, the header is generated with $PINNED"
  exit 77
fi
FRESH="$(mktemp "${TMPDIR:-/tmp}/switchboard.h.XXXXXX")"
trap 'rm -f "$FRESH"' EXIT
"$CBINDGEN" --quiet --config "$ROOT/ffi/cbindgen.toml" --output "$FRESH" "$ROOT/ffi"
if ! diff -u "$ROOT/include/switchboard.h" "$FRESH"; then
  echo "include/switchboard.h is stale: run \`make header\` and commit it" >&2
  exit 1
fi
echo "include/switchboard.h is fresh (cbindgen $VERSION)"
