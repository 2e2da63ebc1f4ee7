// One benchmark scenario in a fresh process, started by scripts/bench.mjs with fork():
//
//   node scripts/bench/child.mjs '<job JSON>'
//
// job.mode "scenario": load a model, encode text, time UNet steps and VAE decodes at one size
//   with job.threads compute threads, and report wall and process CPU seconds (user + sys) of
//   each, and the process's peak RSS at the end.
// job.mode "matmul": the matrix-product throughput of one weight type on the UNet's shapes (1 thread),
//   and which kernel did it (the parent's environment may force one: scripts/bench/kernels.mjs).
// job.mode "safety": the safety checker's CPU-seconds per image (scripts/bench/safety-checker.mjs).
// job.mode "e2e": one whole txt2img through generate(), 1 thread, with its CPU-seconds split into
//   text encoder, steps and VAE (scripts/bench/end-to-end.mjs).
//
// The result goes to the parent over the IPC channel ({ kind: "result", result }); progress
// lines go to stderr. Any failure exits non-zero after sending { kind: "error", message }.
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { runEndToEndChild } from "./end-to-end.mjs";
import { runSafetyCheckerChild } from "./safety-checker.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const job = JSON.parse(process.argv[2] ?? "{}");
const tag = job.tag ?? job.mode;

function log(message) {
  process.stderr.write(`  [${tag}] ${message}\n`);
}

function send(message) {
  return new Promise((done) => {
    if (!process.send) {
      process.stdout.write(JSON.stringify(message) + "\n");
      done();
    } else {
      process.send(message, () => done());
    }
  });
}

function median(values) {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function cpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Times an async call: wall seconds and process CPU seconds (all threads, user + sys). */
async function timed(fn) {
  const c0 = cpuSeconds();
  const t0 = performance.now();
  const value = await fn();
  return { value, seconds: (performance.now() - t0) / 1000, cpuSeconds: cpuSeconds() - c0 };
}

/** `warmup` untimed-for-the-median calls, then `reps` timed ones; the first call is kept apart. */
async function repeat(label, warmup, reps, fn) {
  const samples = [];
  let first = null;
  for (let i = 0; i < warmup + reps; i++) {
    const t = await timed(fn);
    if (i === 0) first = { seconds: t.seconds, cpuSeconds: t.cpuSeconds };
    const what = i < warmup ? `warm-up ${i + 1}/${warmup}` : `${i - warmup + 1}/${reps}`;
    log(`${label} ${what}: ${t.seconds.toFixed(3)} s wall, ${t.cpuSeconds.toFixed(3)} CPU-s`);
    if (i >= warmup) samples.push({ seconds: t.seconds, cpuSeconds: t.cpuSeconds });
  }
  return {
    seconds: median(samples.map((s) => s.seconds)),
    cpuSeconds: median(samples.map((s) => s.cpuSeconds)),
    first,
    samples,
  };
}

/** Deterministic standard normals (xorshift32 + Box-Muller). */
function normals(n, seed) {
  let s = seed >>> 0 || 1;
  const uniform = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const t = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

function rssBytes() {
  // resourceUsage().maxRSS is in kilobytes (libuv normalises it on every platform).
  return { peakRssBytes: process.resourceUsage().maxRSS * 1024, rssBytes: process.memoryUsage().rss };
}

async function runScenario() {
  const { loadModel } = await import(pathToFileURL(join(root, "dist/index.js")).href);
  const baseline = rssBytes();
  const { model: path, backend = "cpu", threads, flashAttention, width, height, reps, vaeReps, guidanceScale = 7.5 } = job;
  const result = { mode: "scenario", backend, threads, width, height, baselineRssBytes: baseline.rssBytes };

  log(`loading ${path} on ${backend} (threads ${threads}${flashAttention ? ", flash attention" : ""})`);
  const load = await timed(() => loadModel(path, { backend, threads, flashAttention }));
  const model = load.value;
  result.loadSeconds = load.seconds;
  result.loadCpuSeconds = load.cpuSeconds;
  const peakByPhase = {};
  const phase = (name) => (peakByPhase[name] = process.resourceUsage().maxRSS * 1024);
  phase("load");
  result.afterLoadRssBytes = process.memoryUsage().rss;
  log(`loaded in ${load.seconds.toFixed(3)} s`);

  try {
    const f = model.vaeScaleFactor;
    if (width % f || height % f) throw new Error(`width and height must be multiples of ${f}`);
    const lh = height / f;
    const lw = width / f;
    const lc = model.latentChannels;

    // Text encoding: the unconditional and the conditional prompt in one batch of 2, as a guided run does.
    const uncond = model.tokenize("").ids;
    const cond = model.tokenize("富士山の上に浮かぶ赤い風船、油絵").ids;
    const ids = new Int32Array(uncond.length + cond.length);
    ids.set(uncond, 0);
    ids.set(cond, uncond.length);
    let textStates;
    const text = await repeat("text encode", 1, Math.max(1, reps), async () => (textStates = await model.encodeText(ids, 2)));
    result.textEncodeSeconds = text.seconds;
    result.textEncodeCpuSeconds = text.cpuSeconds;
    result.textEncodeFirstSeconds = text.first.seconds;
    phase("textEncode");

    // One sampling step with guidance: UNet on [uncond, cond] (batch 2), then the CFG combination.
    const plane = lc * lh * lw;
    const latent = normals(plane, 1234);
    const latents = new Float32Array(2 * plane);
    latents.set(latent, 0);
    latents.set(latent, plane);
    const guided = new Float32Array(plane);
    const step = await repeat(`step ${width}x${height}`, 1, reps, async () => {
      const noise = await model.predictNoise({ latents, shape: [2, lc, lh, lw], timesteps: [500, 500], textStates });
      for (let i = 0; i < plane; i++) guided[i] = noise[i] + guidanceScale * (noise[plane + i] - noise[i]);
      return guided;
    });
    result.stepSeconds = step.seconds;
    result.stepCpuSeconds = step.cpuSeconds;
    result.stepFirstSeconds = step.first.seconds;
    result.stepSamples = step.samples;
    phase("step");

    // VAE decode of one image: no warm-up (a generation decodes once, so the first call is what it pays).
    const z = normals(plane, 99);
    for (let i = 0; i < plane; i++) z[i] /= model.scalingFactor;
    const vae = await repeat(`VAE decode ${width}x${height}`, 0, Math.max(1, vaeReps), () => model.decodeLatents(z, [1, lc, lh, lw]));
    result.vaeDecodeSeconds = vae.seconds;
    result.vaeDecodeCpuSeconds = vae.cpuSeconds;
    result.vaeDecodeSamples = vae.samples;
    phase("vaeDecode");

    result.memory = model.memory();
  } finally {
    await model.close();
  }
  result.peakRssBytesAfter = peakByPhase;
  Object.assign(result, rssBytes());
  return result;
}

async function runMatmul() {
  const { native } = await import(pathToFileURL(join(root, "dist/native/addon.js")).href);
  const addon = native();
  const { type, shapes, runs } = job;
  const traits = addon.typeTraits(type);
  const results = [];
  for (const s of shapes) {
    if (s.k % traits.blockSize !== 0) {
      results.push({ ...s, skipped: `k = ${s.k} is not a multiple of ${type}'s block of ${traits.blockSize}` });
      log(`${s.name}: skipped (k not a multiple of ${traits.blockSize})`);
      continue;
    }
    let r;
    try {
      // As the engine runs it: q4_0/q4_K in ggml's repacking buffer, q8_0 interleaved for the
      // engine's kernel where the CPU has one (native/kernels/q8_gemm.h: AVX-512 VNNI, AVX-VNNI, AVX2).
      r = addon.diagnostics.benchMatmul(type, s.m, s.n, s.k, 1, runs, true);
    } catch (error) {
      results.push({ ...s, error: error?.code ? `${error.code}: ${error.message}` : String(error?.message ?? error) });
      log(`${s.name}: failed: ${results.at(-1).error}`);
      continue;
    }
    const gflopsPerCore = r.flops / r.cpuSecondsPerRun / 1e9;
    results.push({ ...s, secondsPerRun: r.secondsPerRun, cpuSecondsPerRun: r.cpuSecondsPerRun, flops: r.flops, gflopsPerCore, kernel: r.kernel });
    log(`${s.name}: ${gflopsPerCore.toFixed(1)} GFLOP/s per core (${(r.cpuSecondsPerRun * 1000).toFixed(1)} CPU-ms per run, ${r.kernel})`);
  }
  const measured = results.filter((r) => r.gflopsPerCore !== undefined);
  const mean = measured.length ? measured.reduce((a, r) => a + r.gflopsPerCore, 0) / measured.length : null;
  const kernels = [...new Set(measured.map((r) => r.kernel))];
  return { mode: "matmul", type, gflopsPerCore: mean, kernel: kernels.join(", ") || null, shapes: results, ...rssBytes() };
}

try {
  const children = { matmul: runMatmul, e2e: () => runEndToEndChild(root, job, log), safety: () => runSafetyCheckerChild(root, job, log) };
  const result = await (children[job.mode] ?? runScenario)();
  await send({ kind: "result", result });
  process.exit(0);
} catch (error) {
  const message = error?.code ? `${error.code}: ${error.message}` : String(error?.message ?? error);
  log(`failed: ${message}`);
  await send({ kind: "error", message });
  process.exit(1);
}
