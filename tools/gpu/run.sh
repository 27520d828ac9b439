#!/usr/bin/env bash
# tools/gpu/run.sh: the GPU bench on a lent GPU machine, in one command that
# needs no network and returns within a time budget.
#
# On this machine, once:  tools/gpu/pack.sh   (builds .gpu/: Deno, node_modules, loaders)
# Then one device run (a fresh machine takes a minute or more to start, and a
# task's device time is 15 minutes in all, so this is meant to be the only one):
#   run(command="bash tools/gpu/run.sh", carry=[".gpu"], timeout_s=420)
# Rehearse it here first, offline, on the software adapter: tools/gpu/rehearse.sh
#
# What it does, logging everything to $OUT/kit.log as it goes:
#  1. the machine: GPU name, driver and clocks (nvidia-smi), CPUs;
#  2. the Vulkan and EGL loaders from .gpu/debs, unpacked into / as the device
#     README says (or into GPU_KIT_LOADER_ROOT with LD_LIBRARY_PATH), and the
#     NVIDIA Vulkan ICD found and named in VK_DRIVER_FILES;
#  3. Deno and node_modules from .gpu (xz, or Python's lzma where xz is missing);
#  4. the adapter (tools/gpu/adapter.ts -> $OUT/adapter.json); a software
#     fallback stops the run there, since its figures would pass for a GPU's;
#  5. the parts, one process each, most important first, each under a time
#     limit and skipped when the budget left is too short: one that hangs
#     costs only its own figures. `train`, `tests`, `generate`, `matmul` are
#     `bench gpu --parts PART` (train with PyTorch on CUDA beside it where the
#     machine has it), each writing $OUT/PART.json; `pipeline` runs
#     pipelines/seed.yaml (the seed's model: hidden 512, 8 heads, 8 layers,
#     batch 32) end to end on the GPU, shortened (fewer clips, a step cap,
#     fewer generations), writing $OUT/pipeline.json (its run summary) and
#     $OUT/pipeline.md; `deno` runs the Deno command line in GPU_KIT_DENO
#     (for a second run, e.g. "run -A bench/train.ts --seed-config --seq 512
#     --no-pytorch"; `run` and `test` get --cached-only), its stdout to
#     $OUT/deno.out. At most 8 files come back:
#     a run of every part but `deno` writes 8, so name `deno` with fewer.
#
# Settings (environment; the defaults are for the H200 machine):
#   GPU_KIT_BUDGET_S     seconds for the whole script (360: it must end inside
#                        the run's timeout_s, with the machine's start on top,
#                        and leave the 15 minutes room for a second run)
#   GPU_KIT_PARTS        the parts, in order (train,tests,pipeline,generate,matmul)
#   GPU_KIT_PART_MAX_S   the most one part may take (default per part:
#                        train 200, tests 120, pipeline 150, deno 240,
#                        the others 45)
#   GPU_KIT_DENO         the `deno` part's arguments, split at spaces
#   GPU_KIT_PIPELINE     the pipeline file (seed.yaml)
#   GPU_KIT_PIPELINE_SET its overrides, space-separated STEP.PARAM=VALUE
#                        (synth.clips_per_category=60 train.max_steps=150
#                        evaluate.generate.per_category=4)
#   GPU_KIT_ALLOW_SOFTWARE=1  go on with a software adapter (rehearsals)
#   GPU_KIT_ICD          the Vulkan ICD's JSON file (default: NVIDIA's, found)
#   GPU_KIT_LOADER_ROOT  where the loader packages go (default /, as root)
#   GPU_KIT_WORK         scratch folder (default /tmp/gpu-kit)
set -uo pipefail

# The whole script is one function, read completely before it runs: bash reads
# a script as it goes, and this one runs for minutes (while its file may be
# edited, or its position shared with the process substitution's child).
main() {
  repo=$(cd "$(dirname "$0")/../.." && pwd)
  cd "$repo" || exit 1
  out=${OUT:?OUT is not set: the device tool sets it; here: OUT=/tmp/gpu-out bash tools/gpu/run.sh}
  mkdir -p "$out"
  budget=${GPU_KIT_BUDGET_S:-360}
  parts=${GPU_KIT_PARTS:-train,tests,pipeline,generate,matmul}
  pipeline=${GPU_KIT_PIPELINE:-seed.yaml}
  pipeline_set=${GPU_KIT_PIPELINE_SET-synth.clips_per_category=60 train.max_steps=150 evaluate.generate.per_category=4}
  work=${GPU_KIT_WORK:-/tmp/gpu-kit}
  loader_root=${GPU_KIT_LOADER_ROOT:-/}
  allow=()
  [ -z "${GPU_KIT_ALLOW_SOFTWARE:-}" ] || allow=(--allow-software)
  start=$SECONDS
  exec > >(tee -a "$out/kit.log") 2>&1
  tee_pid=$!
  # At exit, let tee write the last lines before the device tool collects $OUT.
  trap 'exec >&- 2>&-; wait "$tee_pid" 2>/dev/null' EXIT

  say() { printf '[%4ds] %s\n' $((SECONDS - start)) "$*"; }
  fail() { say "STOP: $*"; exit 1; }

  say "tools/gpu/run.sh in $repo, budget ${budget}s, parts $parts"
  IFS=, read -r -a wanted <<<"$parts"
  for part in "${wanted[@]}"; do
    case $part in
      train | tests | pipeline | generate | matmul) ;;
      deno) [ -n "${GPU_KIT_DENO:-}" ] || fail "the deno part needs GPU_KIT_DENO (its arguments)" ;;
      *) fail "unknown part \"$part\" in GPU_KIT_PARTS; known: train, tests, pipeline, generate, matmul, deno" ;;
    esac
  done
  git -C "$repo" log -1 --format='commit %H %s' 2>/dev/null || true

  # 1. The machine.
  say "machine: $(uname -srm), $(nproc) CPUs"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm,power.limit \
      --format=csv || true
  else
    say "no nvidia-smi here"
  fi
  [ -d .gpu ] || fail "no .gpu folder: run tools/gpu/pack.sh on the development machine and carry .gpu"

  # 2. The loaders and the ICD.
  debs=(.gpu/debs/*.deb)
  if [ "$loader_root" = / ]; then
    if command -v dpkg >/dev/null && [ "$(id -u)" = 0 ]; then
      for f in "${debs[@]}"; do dpkg -x "$f" / || say "could not unpack $f"; done
      ldconfig || true
    else
      say "not root or no dpkg: the loaders stay as the machine has them"
    fi
  else
    mkdir -p "$loader_root"
    for f in "${debs[@]}"; do dpkg -x "$f" "$loader_root" || say "could not unpack $f"; done
    export LD_LIBRARY_PATH="$loader_root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  ld_cache=$(ldconfig -p 2>/dev/null)
  say "Vulkan loader: $(grep -m1 -o 'libvulkan.so.1 .*' <<<"$ld_cache" || echo 'not in the ld cache')${LD_LIBRARY_PATH:+ (LD_LIBRARY_PATH $LD_LIBRARY_PATH)}"
  icd=${GPU_KIT_ICD:-}
  if [ -z "$icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
    for d in /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d; do
      [ -f "$d/nvidia_icd.json" ] && { icd=$d/nvidia_icd.json; break; }
    done
  fi
  [ -z "$icd" ] || export VK_DRIVER_FILES=$icd
  for f in /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json /usr/share/glvnd/egl_vendor.d/10_nvidia.json; do
    [ -f "$f" ] && { export __EGL_VENDOR_LIBRARY_FILENAMES=$f; break; }
  done
  say "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"

  # 3. Deno and node_modules.
  mkdir -p "$work/deno-dir" "$work/xdg"
  chmod 700 "$work/xdg"
  unxz_to() { # unxz_to FILE.xz DEST
    if command -v xz >/dev/null; then xz -dc "$1" >"$2"; else
      python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
    fi
  }
  unxz_to .gpu/deno.xz "$work/deno" && chmod +x "$work/deno" || fail "could not unpack .gpu/deno.xz"
  deno=$work/deno
  if [ ! -d node_modules/.deno ]; then
    if command -v xz >/dev/null; then tar xJf .gpu/nm.tar.xz; else
      python3 -c 'import sys, tarfile; t = tarfile.open(sys.argv[1]); t.extractall(".", **({"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}))' .gpu/nm.tar.xz
    fi || fail "could not unpack .gpu/nm.tar.xz"
  fi
  export DENO_DIR=$work/deno-dir XDG_RUNTIME_DIR=$work/xdg DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
  say "$("$deno" --version | head -1)"

  # 4. The adapter.
  "$deno" run --cached-only -A tools/gpu/adapter.ts "${allow[@]}" >"$out/adapter.json"
  status=$?
  head -c 400 "$out/adapter.json"; echo
  [ $status = 0 ] || fail "the adapter check failed (exit $status): no GPU figures would be a GPU's"

  # 5. The bench, part by part.
  part_cap() {
    if [ -n "${GPU_KIT_PART_MAX_S:-}" ]; then echo "$GPU_KIT_PART_MAX_S"; return; fi
    case $1 in train) echo 200 ;; tests) echo 120 ;; pipeline) echo 150 ;; deno) echo 240 ;; *) echo 45 ;; esac
  }
  run_part() { # run_part PART LIMIT: one part under `timeout`; its exit status
    local part=$1 limit=$2
    if [ "$part" = deno ]; then
      local args
      read -r -a args <<<"$GPU_KIT_DENO"
      # Offline, `run` and `test` must not look anything up: node_modules holds it all.
      case ${args[0]} in run | test) args=("${args[0]}" --cached-only "${args[@]:1}") ;; esac
      say "deno ${args[*]} (at most ${limit}s)"
      timeout -k 5 "$limit" "$deno" "${args[@]}" >"$out/deno.out"
    elif [ "$part" = pipeline ]; then
      local sets=()
      for kv in $pipeline_set; do sets+=(--set "$kv"); done
      say "pipeline $pipeline ${sets[*]} (at most ${limit}s)"
      timeout -k 5 "$limit" "$deno" run --cached-only -A main.ts pipeline "$pipeline" \
        --store "$work/store" "${sets[@]}" --json --summary-md "$out/pipeline.md" >"$out/pipeline.json"
    else
      say "bench gpu --parts $part (at most ${limit}s)"
      timeout -k 5 "$limit" "$deno" run --cached-only -A bench/main.ts gpu --parts "$part" --json \
        "${allow[@]}" >"$out/$part.json"
    fi
  }
  summary=()
  for part in "${wanted[@]}"; do
    left=$((budget - (SECONDS - start)))
    cap=$(part_cap "$part")
    limit=$((left < cap ? left : cap))
    if [ "$limit" -lt 20 ]; then
      summary+=("$part: skipped, ${left}s of the budget left")
      say "skipping $part: ${left}s left"
      continue
    fi
    t0=$SECONDS
    run_part "$part" "$limit"
    status=$?
    case $status in
      0) summary+=("$part: ok in $((SECONDS - t0))s") ;;
      124 | 137) summary+=("$part: TIMED OUT after ${limit}s (its lines above; no JSON)") ;;
      *) summary+=("$part: FAILED with exit $status after $((SECONDS - t0))s") ;;
    esac
    say "${summary[-1]}"
  done

  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,clocks.sm,temperature.gpu,power.draw --format=csv || true
  fi
  say "summary:"
  for line in "${summary[@]}"; do echo "  $line"; done
  case "${summary[*]}" in *FAILED* | *"TIMED OUT"* | *skipped*) exit 1 ;; esac
}

main "$@"
exit $?
