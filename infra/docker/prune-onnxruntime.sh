#!/bin/sh
# Removes onnxruntime-node's native binaries for other platforms from node_modules (about 250 MB of 300 MB), keeping
# bin/napi-v6/linux/<this machine's arch>. Run from the directory that holds node_modules.
set -eu
case "$(uname -m)" in
  x86_64 | amd64) keep=x64 ;;
  aarch64 | arm64) keep=arm64 ;;
  *) echo "prune-onnxruntime: unknown architecture $(uname -m); nothing removed" >&2; exit 0 ;;
esac
found=0
for bin in node_modules/.deno/onnxruntime-node@*/node_modules/onnxruntime-node/bin/napi-v*; do
  [ -d "$bin" ] || continue
  found=1
  rm -rf "$bin/darwin" "$bin/win32"
  for arch in "$bin"/linux/*; do
    [ "$(basename "$arch")" = "$keep" ] || rm -rf "$arch"
  done
done
if [ "$found" -eq 0 ]; then
  echo "prune-onnxruntime: no onnxruntime-node binaries under $(pwd)/node_modules" >&2
  exit 1
fi
