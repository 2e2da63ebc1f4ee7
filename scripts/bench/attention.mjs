#!/usr/bin/env node
// The CPU attention's cost per kernel on the shapes of one image size (docs/benchmark.md,
// "Attention on the CPU"):
//
//   node scripts/bench/attention.mjs [--size 512] [--runs 3] [--rounds 3] [--kernels default,avx2,amx-bf16,ggml]
//
// Each kernel runs in its own child process (the kernel is chosen once per process):
//   default    the best f32 kernel this CPU has (native/kernels/cpu_attention.cpp's choice)
//   avx512, avx2, amx-bf16   that kernel (JSD_ATTENTION_KERNEL; amx-bf16 is the bf16 option)
//   ggml       ggml's mul_mat + soft_max + mul_mat (JSD_NO_FUSED_ATTENTION=1)
// and times the engine's attention (diagnostics.benchAttention: the fused op with its copies of
// keys and values, 1 thread, the median of `runs`) on every shape: SD v1's UNet at that size (8
// heads per level, 2 images as with guidance; self-attention over the level's pixels and
// cross-attention over 77 text tokens) and the VAE's mid-block (one head of 512, 1 image). The
// rounds go kernel by kernel, interleaved; the table has each kernel's median CPU-seconds and
// GFLOP/s (4 N heads Lq Lk d per second) per shape.
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const args = { size: 512, runs: 3, rounds: 3, kernels: ["default", "avx2", "amx-bf16", "ggml"] };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === "--size") args.size = Number(process.argv[++i]);
  else if (a === "--runs") args.runs = Number(process.argv[++i]);
  else if (a === "--rounds") args.rounds = Number(process.argv[++i]);
  else if (a === "--kernels") args.kernels = process.argv[++i].split(",");
  else {
    console.error(`attention: unknown option ${a}`);
    process.exit(2);
  }
}
if (!(args.size >= 64 && args.size % 64 === 0)) {
  console.error("attention: --size must be a multiple of 64");
  process.exit(2);
}

// [name, heads, head width, queries, keys, images]
function shapes(size) {
  const out = [];
  [320, 640, 1280, 1280].forEach((channels, level) => {
    const tokens = (size / 8 / 2 ** level) ** 2;
    out.push([`unet self ${tokens}x${channels / 8}`, 8, channels / 8, tokens, tokens, 2]);
    out.push([`unet cross ${tokens}x${channels / 8}`, 8, channels / 8, tokens, 77, 2]);
  });
  out.push([`vae mid ${(size / 8) ** 2}x512`, 1, 512, (size / 8) ** 2, (size / 8) ** 2, 1]);
  return out;
}

const env = (kernel) => (kernel === "ggml" ? { JSD_NO_FUSED_ATTENTION: "1" } : kernel === "default" ? {} : { JSD_ATTENTION_KERNEL: kernel });

function runKernel(kernel, list) {
  const addon = pathToFileURL(join(root, "dist/native/addon.js")).href;
  const script = `
    const { native } = await import(${JSON.stringify(addon)});
    const out = ${JSON.stringify(list)}.map(([, h, d, lq, lk, n]) => native().diagnostics.benchAttention(h, d, lq, lk, n, 1, ${args.runs}));
    console.log(JSON.stringify(out));`;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, ...env(kernel) } });
  if (run.status !== 0) throw new Error(`${kernel}: ${run.stderr.trim()}`);
  return JSON.parse(run.stdout);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const list = shapes(args.size);
const samples = new Map(args.kernels.map((k) => [k, list.map(() => [])]));
const ran = new Map();
for (let round = 0; round < args.rounds; round++) {
  for (const kernel of args.kernels) {
    const results = runKernel(kernel, list);
    results.forEach((r, i) => samples.get(kernel)[i].push(r));
    ran.set(kernel, results[0].kernel);
    console.error(`round ${round + 1}/${args.rounds}: ${kernel} (${results[0].kernel})`);
  }
}

console.log(`attention, ${args.size}x${args.size}, 1 thread: median CPU-s per call (GFLOP/s); ${args.rounds} rounds of ${args.runs} runs`);
console.log(["shape", ...args.kernels.map((k) => `${k} (${ran.get(k)})`)].join(" | "));
list.forEach(([name], i) => {
  const cells = args.kernels.map((k) => {
    const rs = samples.get(k)[i];
    const s = median(rs.map((r) => r.cpuSecondsPerRun));
    return `${s.toFixed(4)} (${(rs[0].flops / s / 1e9).toFixed(0)})`;
  });
  console.log([name, ...cells].join(" | "));
});
