#!/usr/bin/env bash
# RUSTC_WRAPPER for fuzz builds (scripts/fuzz-wasm.sh): compiles the crypto
# crates without libFuzzer's coverage instrumentation (-Cpasses=sancov-module).
# Their constant-time code gives no useful feedback; its compare tracing made
# every run ~4x slower (each setup does a handshake: a dozen X25519s) and its
# data-dependent features only bloat the corpus. ASan still instruments them.
rustc=$1
shift
crate=""
prev=""
for a in "$@"; do
  [ "$prev" = "--crate-name" ] && crate=$a
  prev=$a
done
case "$crate" in
  curve25519_dalek | x25519_dalek | blake2 | chacha20 | chacha20poly1305 | poly1305 | \
    universal_hash | cipher | digest | hmac | subtle | rand_chacha | rand_core | zeroize)
    args=()
    for a in "$@"; do
      [ "$a" = "-Cpasses=sancov-module" ] || args+=("$a")
    done
    exec "$rustc" "${args[@]}"
    ;;
esac
exec "$rustc" "$@"
