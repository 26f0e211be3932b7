# The gateway's native addon: a TUN opener (native/tun.c), plain C against
# Node-API so that one build serves every Node version of the same ABI.
# Built by scripts/setup.mjs (ensureNative) with `node-gyp rebuild --nodedir=/usr`.
{
  "targets": [
    {
      "target_name": "trellis_tun",
      "sources": ["native/tun.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
      "cflags_c": ["-std=gnu11"]
    }
  ]
}
