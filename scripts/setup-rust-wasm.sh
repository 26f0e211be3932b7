#!/usr/bin/env bash
# Make a Rust toolchain that can build wasm32-unknown-unknown, plus wasm-bindgen-cli
# (exactly the crate's version) and wasm-pack. Idempotent; prints the toolchain name
# to use as RUSTUP_TOOLCHAIN on its last line.
#
# Where rustup already has the wasm32 target, that toolchain is used. Otherwise the
# offline toolchain is assembled from Debian's rustc-web packages by
# ../shared/tools/rust-wasm-toolchain.sh (rustup cannot download targets here).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' "$here/wasm/Cargo.toml")
WASM_PACK_VERSION=0.15.1
log() { echo "setup-rust-wasm: $*" >&2; }

if ! command -v cargo >/dev/null || ! command -v rustup >/dev/null; then
  log "cargo and rustup are required (https://rustup.rs); none found"; exit 1
fi

toolchain=""
for tc in trellis-wasm stable; do
  if rustup toolchain list 2>/dev/null | grep -q "^$tc" &&
     [ -d "$(rustup run "$tc" rustc --print sysroot 2>/dev/null)/lib/rustlib/wasm32-unknown-unknown/lib" ]; then
    toolchain=$tc; break
  fi
done
if [ -z "$toolchain" ]; then
  script=""
  for cand in "${TRELLIS_SHARED_DIR:-}/tools/rust-wasm-toolchain.sh" "$here/../shared/tools/rust-wasm-toolchain.sh" "$here/scripts/vendor/rust-wasm-toolchain.sh"; do
    [ -f "$cand" ] && { script=$cand; break; }
  done
  [ -n "$script" ] || { log "no wasm32 target and no rust-wasm-toolchain.sh found"; exit 1; }
  libs=(libcurl4 libgit2-1.5 libssh2-1 libsqlite3-0 libssl3)
  if ! dpkg -s "${libs[@]}" >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # runtime libraries the Debian cargo binary links against
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${libs[@]}" >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${libs[@]}" >/dev/null; }
  fi
  log "building the offline wasm32 toolchain (first time: ~2-3 min)"
  bash "$script" >&2
  toolchain=trellis-wasm
fi

have_version() { "$1" --version 2>/dev/null | grep -q "$2"; }
if ! have_version wasm-bindgen "$BINDGEN_VERSION"; then
  log "installing wasm-bindgen-cli $BINDGEN_VERSION (cargo install, a few minutes)"
  cargo install --quiet wasm-bindgen-cli --version "$BINDGEN_VERSION" >&2
fi
if ! have_version wasm-pack "$WASM_PACK_VERSION"; then
  log "installing wasm-pack $WASM_PACK_VERSION (cargo install, a few minutes)"
  cargo install --quiet wasm-pack --version "$WASM_PACK_VERSION" >&2
fi
echo "$toolchain"
