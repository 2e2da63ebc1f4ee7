#!/usr/bin/env node
// Soak test (issue #9): sequential generations on the embedded model, some of them aborted,
// watching the process's RSS and the engine's native buffers. Not a CI test: run it by hand
// after `npm run build` (it uses dist/).
//
//   node scripts/soak.mjs [--runs 200] [--warmup 50] [--steps 4] [--threads N] [--abort-every 7] [--json]
//
// RSS is sampled after a forced GC (when node runs with --expose-gc; the script re-executes
// itself with it) once the warm-up runs are done, then every 10 runs, and at the end. It
// reports the growth from the post-warm-up sample to the final one (the limit is 5%) and the
// native buffer totals from model.memory(). Exit status 1 when the growth exceeds the limit or
// the native totals grew.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

if (typeof globalThis.gc !== "function" && !process.execArgv.includes("--expose-gc")) {
  const r = spawnSync(process.execPath, ["--expose-gc", ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit" });
  process.exit(r.status ?? 1);
}

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "200" },
    // RSS settles after about 50 generations (glibc arenas and V8 heap growing to their working size
    // across the schedulers' different buffers); measured: 10 runs -> 11.5 % later growth, 50 -> 0.5 %.
    warmup: { type: "string", default: "50" },
    steps: { type: "string", default: "4" },
    threads: { type: "string" },
    "abort-every": { type: "string", default: "7" },
    "max-growth": { type: "string", default: "5" },
    json: { type: "boolean", default: false },
  },
});
const runs = Number(values.runs);
const warmup = Number(values.warmup);
const steps = Number(values.steps);
const abortEvery = Number(values["abort-every"]);
const maxGrowth = Number(values["max-growth"]);

const { loadModel } = await import("../dist/index.js");

const PROMPTS = [
  "白い背景に赤い丸",
  "青い背景に黄色い星",
  "緑の四角と赤い三角",
  "富士山と桜",
  "a red circle on a white background",
  "赤い丸と青い四角、".repeat(20), // over 77 tokens: truncated
  "🍣 寿司",
  "",
  "（赤い丸：1.3） BREAK 青い背景",
];
const SCHEDULERS = ["pndm", "ddim", "euler", "euler_a", "lms", "dpmpp_2m"];

const mib = (bytes) => bytes / (1024 * 1024);
function rss() {
  globalThis.gc?.();
  globalThis.gc?.();
  return process.memoryUsage().rss;
}
const nativeTotals = (model) => {
  const parts = model.memory();
  return {
    weightBytes: parts.reduce((a, p) => a + p.weightBytes, 0),
    computeBytes: parts.reduce((a, p) => a + p.computeBytes, 0),
    parts,
  };
};

const model = await loadModel(undefined, values.threads ? { threads: Number(values.threads) } : {});
const log = (line) => !values.json && process.stdout.write(`${line}\n`);
log(`soak: ${runs} generations, 64x64, ${steps} steps, every ${abortEvery}th aborted mid-run, ${model.threads} threads, node ${process.version}`);

const times = [];
const abortedTimes = [];
const samples = [];
let rssAfterWarmup = 0;
let nativeAfterWarmup;
let completed = 0;
let aborted = 0;
const started = performance.now();
for (let i = 0; i < runs; i++) {
  const prompt = PROMPTS[i % PROMPTS.length];
  const options = {
    prompt,
    negativePrompt: i % 3 === 0 ? "ぼやけた" : undefined,
    promptMode: prompt.includes("BREAK") ? "extended" : "reference",
    width: 64,
    height: 64,
    steps,
    seed: 1000 + i,
    scheduler: SCHEDULERS[i % SCHEDULERS.length],
    numImages: i % 25 === 4 ? 2 : 1, // the first batch of 2 falls in the warm-up
  };
  const t0 = performance.now();
  if (abortEvery > 0 && i % abortEvery === abortEvery - 1) {
    const controller = new AbortController();
    const stopAt = 1 + (i % steps);
    try {
      await model.generate({ ...options, signal: controller.signal, onProgress: (p) => p.step === stopAt && controller.abort() });
      throw new Error(`run ${i} was not aborted`);
    } catch (error) {
      if (error?.name !== "AbortError") throw error;
    }
    aborted++;
    abortedTimes.push(performance.now() - t0);
  } else {
    const images = await model.generate(options);
    if (images.length !== options.numImages || images[0].rgba.length !== 64 * 64 * 4) throw new Error(`run ${i}: unexpected result`);
    completed++;
    times.push(performance.now() - t0);
  }
  const done = i + 1;
  if (done === warmup) {
    rssAfterWarmup = rss();
    nativeAfterWarmup = nativeTotals(model);
    samples.push({ run: done, rssMiB: mib(rssAfterWarmup) });
    log(`after warm-up (${done} runs): RSS ${mib(rssAfterWarmup).toFixed(1)} MiB, native weights ${mib(nativeAfterWarmup.weightBytes).toFixed(2)} MiB, compute ${mib(nativeAfterWarmup.computeBytes).toFixed(2)} MiB`);
  } else if (done > warmup && (done % 20 === 0 || done === runs)) {
    const r = rss();
    const m = process.memoryUsage();
    samples.push({ run: done, rssMiB: mib(r), heapTotalMiB: mib(m.heapTotal), heapUsedMiB: mib(m.heapUsed), externalMiB: mib(m.external) });
    log(
      `run ${String(done).padStart(4)}: RSS ${mib(r).toFixed(1)} MiB (${(((r - rssAfterWarmup) / rssAfterWarmup) * 100).toFixed(2)}%)` +
        `  JS heap ${mib(m.heapUsed).toFixed(1)}/${mib(m.heapTotal).toFixed(1)} MiB, external ${mib(m.external).toFixed(1)} MiB`,
    );
  }
}
const totalSeconds = (performance.now() - started) / 1000;
// The last run may have been aborted, which leaves the UNet's compute buffer rather than the
// VAE's: finish with one complete run so the native totals compare like with like.
await model.generate({ prompt: PROMPTS[0], width: 64, height: 64, steps, seed: 1, scheduler: SCHEDULERS[(warmup - 1) % SCHEDULERS.length] });
const rssEnd = rss();
const nativeEnd = nativeTotals(model);
await model.close();

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mean = (xs) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
const growth = ((rssEnd - rssAfterWarmup) / rssAfterWarmup) * 100;
// A leak grows linearly; allocator retention levels off. The second half tells them apart.
const half = samples.find((s) => s.run >= runs / 2) ?? samples[0];
const growthSecondHalf = ((mib(rssEnd) - half.rssMiB) / half.rssMiB) * 100;
const nativeGrew = nativeEnd.weightBytes > nativeAfterWarmup.weightBytes || nativeEnd.computeBytes > nativeAfterWarmup.computeBytes;
const report = {
  runs,
  completed,
  aborted,
  steps,
  threads: model.threads,
  rssAfterWarmupMiB: Number(mib(rssAfterWarmup).toFixed(2)),
  rssEndMiB: Number(mib(rssEnd).toFixed(2)),
  rssGrowthPercent: Number(growth.toFixed(2)),
  rssGrowthSecondHalfPercent: Number(growthSecondHalf.toFixed(2)),
  rssPeakMiB: Number(Math.max(...samples.map((s) => s.rssMiB), mib(rssEnd)).toFixed(2)),
  native: {
    afterWarmup: { weightBytes: nativeAfterWarmup.weightBytes, computeBytes: nativeAfterWarmup.computeBytes },
    end: { weightBytes: nativeEnd.weightBytes, computeBytes: nativeEnd.computeBytes },
    endParts: nativeEnd.parts,
  },
  msPerGeneration: { mean: Number(mean(times).toFixed(1)), median: Number(median(times).toFixed(1)), min: Number(Math.min(...times).toFixed(1)), max: Number(Math.max(...times).toFixed(1)) },
  msPerAbortedRun: { mean: Number(mean(abortedTimes).toFixed(1)) },
  totalSeconds: Number(totalSeconds.toFixed(1)),
  samples,
  pass: growth < maxGrowth && !nativeGrew,
};
if (values.json) {
  process.stdout.write(`${JSON.stringify(report)}\n`);
} else {
  log(`end (${runs} runs + 1): RSS ${report.rssEndMiB} MiB, growth ${report.rssGrowthPercent}% (limit ${maxGrowth}%); peak ${report.rssPeakMiB} MiB`);
  log(`growth over the second half (run ${half.run}: ${half.rssMiB.toFixed(1)} MiB to the end): ${report.rssGrowthSecondHalfPercent}%`);
  for (const p of nativeEnd.parts) log(`  native ${p.name.padEnd(12)} weights ${mib(p.weightBytes).toFixed(2)} MiB, compute ${mib(p.computeBytes).toFixed(2)} MiB`);
  log(`native totals: weights ${nativeEnd.weightBytes} B, compute ${nativeEnd.computeBytes} B (after warm-up: ${nativeAfterWarmup.weightBytes} B, ${nativeAfterWarmup.computeBytes} B)`);
  log(`time per generation: mean ${report.msPerGeneration.mean} ms, median ${report.msPerGeneration.median} ms (min ${report.msPerGeneration.min}, max ${report.msPerGeneration.max}); aborted runs ${report.msPerAbortedRun.mean} ms; total ${report.totalSeconds} s`);
  log(report.pass ? "PASS" : "FAIL");
}
process.exitCode = report.pass ? 0 : 1;
