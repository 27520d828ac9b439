#!/usr/bin/env bash
# tools/gpu/pack.sh: packs what a lent GPU machine needs to run this project's
# GPU bench (tools/gpu/run.sh), into .gpu/ at the repository's root, which git
# ignores (.git/info/exclude) and the device tool carries (`carry: [".gpu"]`):
#
#   .gpu/deno.xz        the Deno binary that runs here (2.9.6, as .ci/run pins it)
#   .gpu/nm.tar.xz      node_modules as `deno install` laid it out, less
#                       onnxruntime-web's JSPI build and the source maps
#   .gpu/debs/*.deb     the Vulkan and EGL loaders (Debian amd64), for a machine
#                       without them (../shared/GPU.md, the device README)
#
# That machine reaches no network and starts bare, so everything comes from
# here. The working tree and .gpu travel together under a 64 MiB limit: this
# script refuses to leave a bundle that would not fit.
#
# Run once per machine, after `deno install --frozen`:  tools/gpu/pack.sh
# Rehearse the GPU run here, offline, on the software adapter: tools/gpu/rehearse.sh
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"
die() { echo "error: tools/gpu/pack.sh: $*" >&2; exit 1; }

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"

# The Deno that .ci/run and the README pin (a binary that runs here runs there: x86-64 Linux).
want=2.9.6
deno_bin=$(readlink -f "$(command -v deno)") ||
  die "no deno on the PATH: \`npx -y deno@$want --version\` puts one in npm's cache; link it onto the PATH"
have=$("$deno_bin" --version | sed -n '1s/^deno \([0-9.]*\).*/\1/p')
[ "$want" = "$have" ] || die "the project pins Deno $want, the PATH's deno is $have"
[ "$(uname -m)" = x86_64 ] || die "the GPU machine is x86-64 and this one is $(uname -m): its Deno would not run there"
[ -d node_modules/.deno ] || die "node_modules is missing or not Deno's layout: run \`deno install --frozen\` first"

rm -rf .gpu
mkdir -p .gpu/debs
echo "packing $deno_bin (Deno $have)" >&2
xz -T0 -6 -c "$deno_bin" >.gpu/deno.xz

# onnxruntime-web's wasm build (the export step's self-check), its WebGPU
# builds (.asyncify.wasm, which 1.30's `onnxruntime-web/webgpu` loads, and
# .jsep.wasm) travel; its JSPI build (17 MB), which nothing here imports, and
# the source maps (37 MB, which nothing runs) do not. Rehearsals found the
# export step failing without the wasm build, and its WebGPU check skipped
# without the asyncify one.
echo "packing node_modules" >&2
tar cf - \
  --exclude='ort-wasm-simd-threaded.jspi.wasm' \
  --exclude='*.map' \
  node_modules | xz -T0 -6 >.gpu/nm.tar.xz

echo "downloading the Vulkan and EGL loaders (Debian, amd64)" >&2
lists=$(mktemp -d)
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
# As root, apt's sandbox user cannot write to these folders: download as root, without warnings.
[ "$(id -u)" != 0 ] || o+=(-oAPT::Sandbox::User=root)
mkdir -p "$lists/partial"
apt-get "${o[@]}" -qq update
(cd .gpu/debs && apt-get "${o[@]}" -qq download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
rm -rf "$lists"

tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
bundle=$(du -cb .gpu | tail -1 | cut -f1)
limit=$((64 * 1024 * 1024))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo ".gpu: $(mib "$bundle"); the rest of the work tree: $(mib "$tree"); the device tool's limit: 64 MiB" >&2
[ $((bundle + tree)) -lt $((limit - 4 * 1024 * 1024)) ] ||
  die "the bundle and the working tree come to $(mib $((bundle + tree))), too close to the 64 MiB the device tool carries"
ls -l .gpu .gpu/debs >&2
