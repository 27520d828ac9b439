#!/usr/bin/env bash
# tools/gpu/rehearse.sh: runs tools/gpu/run.sh here as the GPU machine would,
# before a lent machine's 15 minutes are spent on it: a copy of the working
# tree as the device tool sends it (tracked and untracked-not-ignored files,
# and .gpu), no network (a network namespace of its own), an environment with
# no Deno on the PATH, an empty DENO_DIR and HOME, the loaders unpacked into a
# scratch folder (not /), and Mesa's software adapter standing in for the GPU
# (GPU_KIT_ALLOW_SOFTWARE). What it proves: the bundle is complete and runs
# offline, and each part starts, runs and writes its JSON.
#
# Usage: tools/gpu/pack.sh; tools/gpu/rehearse.sh [PARTS]
#   PARTS: run.sh's parts (default generate,tests,pipeline: a few minutes
#   here; the train part runs the seed configuration, about 10 minutes on
#   llvmpipe). The pipeline part runs ci.yaml here with train.max_steps=20
#   (GPU_KIT_PIPELINE and GPU_KIT_PIPELINE_SET change that): the seed's model
#   takes minutes a step on a software adapter.
# The run's files land in the folder it prints at the end.
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"
die() { echo "error: tools/gpu/rehearse.sh: $*" >&2; exit 1; }
[ -f .gpu/deno.xz ] && [ -f .gpu/nm.tar.xz ] || die "no .gpu bundle: run tools/gpu/pack.sh first"
icd=$(ls /usr/share/vulkan/icd.d/lvp_icd*.json 2>/dev/null | head -1) ||
  die "no Mesa llvmpipe ICD: apt-get install mesa-vulkan-drivers"
[ -n "$icd" ] || die "no Mesa llvmpipe ICD: apt-get install mesa-vulkan-drivers"

stage=$(mktemp -d /tmp/gpu-rehearsal.XXXXXX)
mkdir -p "$stage/repo" "$stage/out" "$stage/home"
git ls-files -z --cached --others --exclude-standard |
  tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$stage/repo"
cp -r .gpu "$stage/repo/"
# The device machine gets a work tree, not a repository: the script must not need git.

isolate=(unshare -n)
if ! unshare -n true 2>/dev/null; then
  echo "warning: unshare -n is not permitted here: the rehearsal runs with the network" >&2
  isolate=()
fi
status=0
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$stage/home" OUT="$stage/out" \
  GPU_KIT_ALLOW_SOFTWARE=1 GPU_KIT_ICD="$icd" GPU_KIT_LOADER_ROOT="$stage/loaders" \
  GPU_KIT_WORK="$stage/work" GPU_KIT_PARTS="${1:-generate,tests,pipeline}" \
  GPU_KIT_PIPELINE="${GPU_KIT_PIPELINE:-ci.yaml}" GPU_KIT_DENO="${GPU_KIT_DENO:-}" \
  GPU_KIT_PIPELINE_SET="${GPU_KIT_PIPELINE_SET-train.max_steps=20}" \
  GPU_KIT_BUDGET_S="${GPU_KIT_BUDGET_S:-1500}" GPU_KIT_PART_MAX_S="${GPU_KIT_PART_MAX_S:-900}" \
  "${isolate[@]}" bash "$stage/repo/tools/gpu/run.sh" || status=$?
echo "rehearsal: exit $status; files in $stage/out:"
ls -l "$stage/out"
exit $status
