#!/usr/bin/env bash
# Rebuild wasm/pkg from source and fail if it differs from the committed build.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/build-wasm.sh" >/dev/null
if [ -n "$(git -C "$here" status --porcelain -- wasm/pkg)" ]; then
  echo "check-wasm: the committed wasm/pkg does not match a build from source:" >&2
  git -C "$here" status --short -- wasm/pkg >&2
  git -C "$here" diff --stat -- wasm/pkg >&2
  echo "check-wasm: run 'npm run build:wasm' and commit wasm/pkg" >&2
  exit 1
fi
echo "check-wasm: wasm/pkg matches a build from source" >&2
