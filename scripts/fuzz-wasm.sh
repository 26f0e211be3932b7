#!/usr/bin/env bash
# Fuzz the WireGuard crate's Device::receive (wasm/fuzz, target "receive") with
# libFuzzer through cargo-fuzz on rustup's nightly toolchain, for a bounded time.
#
#   FUZZ_SECONDS   fuzzing time in seconds (default 60; the build comes on top)
#   FUZZ_TOOLCHAIN rustup toolchain (default nightly)
#
# Installs cargo-fuzz if missing (idempotent). Fuzzes a temporary copy of the
# committed seed corpus (wasm/fuzz/corpus/receive), so the corpus in the tree
# does not grow. On a crash (panic, sanitizer report, leak, timeout or OOM)
# exits non-zero and prints the reproducer's path and bytes.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${FUZZ_SECONDS:-60}
toolchain=${FUZZ_TOOLCHAIN:-nightly}
log() { echo "fuzz-wasm: $*" >&2; }

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  log "rustup has no '$toolchain' toolchain (cargo-fuzz needs nightly for the sanitizer flags)"
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz (cargo install, a few minutes)"
  cargo install --quiet --locked cargo-fuzz || cargo install --quiet cargo-fuzz
fi

cd "$here/wasm"
artifacts=fuzz/artifacts/receive
mkdir -p "$artifacts"
corpus=$(mktemp -d)
marker=$(mktemp)
trap 'rm -rf "$corpus" "$marker"' EXIT
cp fuzz/corpus/receive/* "$corpus/"

log "building and fuzzing 'receive' for ${seconds}s"
# Leave the crypto crates out of the coverage instrumentation (see the wrapper).
export RUSTC_WRAPPER="$here/wasm/fuzz/rustc-wrapper.sh"
status=0
cargo +"$toolchain" fuzz run receive "$corpus" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 || status=$?

# Reproducers written during this run (crash-*, leak-*, timeout-*, oom-*).
mapfile -t found < <(find "$artifacts" -type f -newer "$marker" | sort)
if [ "$status" -ne 0 ] || [ "${#found[@]}" -gt 0 ]; then
  log "FAILED (exit $status)"
  for f in "${found[@]}"; do
    log "reproducer: wasm/$f ($(wc -c <"$f") bytes)"
    log "  rerun: cd wasm && cargo +$toolchain fuzz run receive $f"
    log "  minimize: cd wasm && cargo +$toolchain fuzz tmin receive $f"
    od -An -tx1 -v "$f" | head -40 >&2
  done
  [ "${#found[@]}" -gt 0 ] || log "no reproducer was written (a build or setup failure?)"
  exit 1
fi
log "no crash in ${seconds}s"
