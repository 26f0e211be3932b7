#!/usr/bin/env bash
# Build wasm/ with wasm-pack for browsers (pkg/web) and Node (pkg/node).
# The output is committed, so the quick start needs no Rust; CI rebuilds it and
# fails if it differs (scripts/check-wasm.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
toolchain=$(bash "$here/scripts/setup-rust-wasm.sh")
cd "$here/wasm"
# Keep machine-specific paths out of the binary so every clone builds the same bytes.
export RUSTUP_TOOLCHAIN=$toolchain
export CARGO_TARGET_DIR="$here/wasm/target"
export RUSTFLAGS="--remap-path-prefix=$here=/trellis --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
export SOURCE_DATE_EPOCH=0
BASE_RUSTFLAGS=$RUSTFLAGS
# Two builds per target: plain, and one whose ChaCha20 uses SIMD128 (chosen at
# run time by feature detection, wasm/ts/simd.ts).
for variant in plain simd; do
  suffix=""
  export RUSTFLAGS=$BASE_RUSTFLAGS CARGO_TARGET_DIR="$here/wasm/target"
  if [ "$variant" = simd ]; then
    suffix="-simd"
    export RUSTFLAGS="$BASE_RUSTFLAGS -C target-feature=+simd128" CARGO_TARGET_DIR="$here/wasm/target/simd"
  fi
  for target in web nodejs; do
    out=pkg/${target/nodejs/node}$suffix
    rm -rf "$out"
    wasm-pack --quiet build --mode no-install --release --target "$target" --out-dir "$out" --no-pack . >&2
    rm -f "$out/.gitignore" "$out/README.md"
  done
  # wasm-pack --no-pack writes no package.json; Node must load the nodejs glue as CommonJS.
  printf '{\n  "type": "commonjs"\n}\n' > "pkg/node$suffix/package.json"
done
sha256sum pkg/*/*.wasm
