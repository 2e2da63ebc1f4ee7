#!/usr/bin/env node
// npm run bench [-- options]: speed and memory of the engine on a full-size SD v1 / JSD model with
// random weights, per weight type. A benchmark, not a test (docs/benchmark.md explains the figures).
//
//   --types f16,q8_0,...   weight types (default f16,q8_0,q8_0+cpu,q5_0,q4_0,q4_K; "+cpu": converted
//                          with --cpu-layout; kernel variants of a type, same model file:
//                          q8_0+avx2, q8_0+avx2-novnni, <type>@ggml, <type>@ggml-avx2, see
//                          scripts/bench/kernels.mjs)
//   --ggml-avx2-plugin F   ggml's AVX2 CPU plugin for "@ggml-avx2" (default: libggml-cpu-haswell.so
//                          beside the addon, in JSD_CPU_VARIANTS=1 builds, or in prebuilds/)
//   --quick                256×256 only (same as --sizes 256)
//   --sizes 256,512        image sizes (square; default 256,512)
//   --reps N               timed UNet steps after one warm-up (default 3)
//   --vae-reps N           timed VAE decodes, no warm-up (default 1)
//   --threads N            threads of the default-threads runs (default: physical cores)
//   --backend NAME         cpu (default), cuda, vulkan, metal or auto: where the networks run
//   --flash-attention      load the models with flash attention
//   --json FILE            also write every figure as JSON
//   --no-matmul            skip the mat-mul throughput
//   --no-cpu-run           skip the 1-thread runs (no CPU-seconds, no GFLOP/s per core)
//   --matmul-runs N        timed runs per mat-mul shape (default 3)
//   --no-kernel-variants   the mat-mul phase measures only the types given (by default it adds
//                          q8_0+avx2, q8_0+avx2-novnni, q8_0@ggml-avx2 and q4_0+avx2 where q8_0 /
//                          q4_0 are in the run; a variant this CPU or build cannot run is skipped)
//   --cache DIR            model cache folder (default .cache)
//   --reconvert            convert the model files again even when present
//   --timeout S            limit per child process in seconds (default 3600)
//   --e2e                  a whole txt2img per type through generate(), 1 thread, CPU-seconds split
//                          into text encoder, steps and VAE (on by default: 2.5 CPU-minutes at
//                          q8_0, 512×512; not in --quick runs; scripts/bench/end-to-end.mjs);
//                          --no-e2e: not
//   --e2e-size N           its image size (square, a multiple of 8; default 512; implies --e2e)
//   --e2e-steps N          its steps of dpmpp_2m with Karras sigmas (default 20; implies --e2e)
//   --e2e-vae-tiling M     auto (default: generate()'s, tiles above 384×384), on or off
//   --e2e-only             the end-to-end runs only (no scenarios, no mat-mul)
//   --safety-checker       also the safety checker's CPU-seconds per 512×512 image per type, 1 thread,
//                          on a full-size random checker (scripts/bench/safety-checker.mjs)
//   --safety-checker-only  that phase only
//
// Each scenario (type × size × thread count) runs in a fresh child process (scripts/bench/child.mjs,
// started by scripts/bench/run-child.mjs), so its peak RSS is its own and a crash is reported in
// the table instead of ending the run.
// Progress goes to stderr, the table to stdout.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { unetFlops, vaeDecoderFlops } from "./bench/flops.mjs";
import { comparisonVariants, ggmlAvx2Plugin, splitVariant, variantEnv } from "./bench/kernels.mjs";
import { abortPreparation, baseType, prepareModels } from "./bench/models.mjs";
import { E2E_DEFAULTS, measureEndToEnd } from "./bench/end-to-end.mjs";
import { measureSafetyChecker } from "./bench/safety-checker.mjs";
import { report } from "./bench/report.mjs";
import { killRunningChild, runChild } from "./bench/run-child.mjs";
import { MATMUL_SHAPES } from "./bench/shapes.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DEFAULT_TYPES = ["f16", "q8_0", "q8_0+cpu", "q5_0", "q4_0", "q4_K"];
// "q8_0+cpu": the file converted with cpuLayout (jsd convert --cpu-layout), whose q8_0 matrices
// the CPU kernel reads in place (baseType in scripts/bench/models.mjs).

function usage(message) {
  if (message) console.error(`bench: ${message}`);
  // The help is the first two paragraphs of this file's header comment: what it does, the options.
  const lines = readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1);
  const comment = lines.slice(0, lines.findIndex((l) => !l.startsWith("//"))).map((l) => l.replace(/^\/\/ ?/, ""));
  console.error(comment.join("\n").split("\n\n").slice(0, 2).join("\n\n"));
  process.exit(2);
}

function positiveInt(value, option) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) usage(`${option} needs a positive integer`);
  return n;
}

function parseArgs(argv) {
  const a = {
    types: DEFAULT_TYPES,
    sizes: [256, 512],
    reps: 3,
    vaeReps: 1,
    threads: undefined,
    backend: "cpu",
    flashAttention: false,
    json: undefined,
    matmul: true,
    cpuRun: true,
    matmulRuns: 3,
    cache: join(root, ".cache"),
    root,
    safetyChecker: false,
    reconvert: false,
    timeout: 3600,
    ggmlAvx2Plugin: undefined,
    kernelVariants: true,
  };
  let quick = false;
  let sizesGiven = false;
  let e2e;
  const e2eSettings = { size: E2E_DEFAULTS.size, steps: E2E_DEFAULTS.steps, vaeTiling: E2E_DEFAULTS.vaeTiling };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => (i + 1 < argv.length ? argv[++i] : usage(`${arg} needs a value`));
    switch (arg) {
      case "--types":
        a.types = value().split(",").map((t) => t.trim()).filter(Boolean);
        break;
      case "--quick":
        quick = true;
        break;
      case "--sizes":
        a.sizes = value().split(",").map((s) => positiveInt(s, "--sizes"));
        sizesGiven = true;
        break;
      case "--reps":
        a.reps = positiveInt(value(), arg);
        break;
      case "--vae-reps":
        a.vaeReps = positiveInt(value(), arg);
        break;
      case "--backend":
        a.backend = value();
        break;
      case "--threads":
        a.threads = positiveInt(value(), arg);
        break;
      case "--flash-attention":
        a.flashAttention = true;
        break;
      case "--json":
        a.json = resolve(value());
        break;
      case "--no-matmul":
        a.matmul = false;
        break;
      case "--no-kernel-variants":
        a.kernelVariants = false;
        break;
      case "--no-cpu-run":
        a.cpuRun = false;
        break;
      case "--matmul-runs":
        a.matmulRuns = positiveInt(value(), arg);
        break;
      case "--cache":
        a.cache = resolve(value());
        break;
      case "--reconvert":
        a.reconvert = true;
        break;
      case "--timeout":
        a.timeout = positiveInt(value(), arg);
        break;
      case "--e2e":
      case "--no-e2e":
        e2e = arg === "--e2e";
        break;
      case "--e2e-size":
      case "--e2e-steps":
        e2eSettings[arg.slice(6)] = positiveInt(value(), arg);
        e2e ??= true;
        break;
      case "--e2e-only":
        e2e = a.e2eOnly = true;
        break;
      case "--safety-checker":
        a.safetyChecker = true;
        break;
      case "--safety-checker-only":
        a.safetyChecker = a.safetyCheckerOnly = true;
        break;
      case "--e2e-vae-tiling": {
        const m = value();
        if (!["auto", "on", "off"].includes(m)) usage("--e2e-vae-tiling takes auto, on or off");
        e2eSettings.vaeTiling = m === "auto" ? "auto" : m === "on";
        e2e ??= true;
        break;
      }
      case "--ggml-avx2-plugin":
        a.ggmlAvx2Plugin = resolve(value());
        break;
      case "-h":
      case "--help":
        usage();
        break;
      default:
        usage(`unknown option ${arg}`);
    }
  }
  if (quick && sizesGiven && a.sizes.some((s) => s !== 256)) usage("--quick runs 256×256 only; drop --sizes or --quick");
  if (quick) a.sizes = [256];
  if (a.types.length === 0) usage("--types is empty");
  for (const s of a.sizes) if (s % 64 !== 0) usage(`size ${s} is not a multiple of 64`);
  if (e2eSettings.size % 8 !== 0) usage(`--e2e-size ${e2eSettings.size} is not a multiple of 8`);
  // On by default, except in --quick runs (256×256 only, minutes).
  a.e2e = (e2e ?? !quick) ? e2eSettings : null;
  a.quick = quick;
  return a;
}

const log = (message) => process.stderr.write(`${message}\n`);

function git(args) {
  try {
    return execFileSync("git", ["--no-optional-locks", ...args], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`bench: ${signal}, stopping`);
    killRunningChild();
    // A conversion in flight removes its temporary file when aborted: main() exits once it has.
    if (!abortPreparation()) process.exit(130);
  });
}

function exitIfInterrupted() {
  if (interrupted) process.exit(130);
}

// ---- main ----

/**
 * Phase 2: mat-mul throughput, one child per type (a "+cpu" file's products are its type's), then
 * the kernel comparisons added by default (args.matmulVariants), skipped where they cannot run.
 */
async function measureMatmul(args) {
  const matmul = {};
  if (args.matmul) {
    const given = args.types.filter((t) => baseType(splitVariant(t).type) === splitVariant(t).type);
    for (const name of [...given, ...args.matmulVariants]) {
      const { env, error } = args.kernelEnv[name];
      if (error && !given.includes(name)) {
        matmul[name] = { gflopsPerCore: null, skipped: error };
        log(`bench: mat-mul ${name}: skipped (${error})`);
        continue;
      }
      if (error) {
        matmul[name] = { gflopsPerCore: null, error };
        log(`bench: mat-mul ${name}: ${error}`);
        continue;
      }
      log(`bench: mat-mul throughput, ${name}, 1 thread`);
      const job = { mode: "matmul", tag: `matmul ${name}`, type: splitVariant(name).type, shapes: MATMUL_SHAPES, runs: args.matmulRuns };
      const r = await runChild(job, args.timeout, env);
      matmul[name] = r.error ? { gflopsPerCore: null, error: r.error } : { gflopsPerCore: r.result.gflopsPerCore, kernel: r.result.kernel, env, shapes: r.result.shapes };
    }
  }

  return matmul;
}

/** Phase 3: per type and size, a default-threads run and a 1-thread run, each in a child process. */
async function runScenarios(args, models, { threads, flopsAt, vaeFlopsAt }) {
  const scenarios = [];
  const runsPerScenario = args.cpuRun && threads !== 1 ? 2 : 1;
  const totalRuns = args.types.length * args.sizes.length * runsPerScenario;
  let runNumber = 0;
  for (const type of args.types) {
    for (const size of args.sizes) {
      const flops = flopsAt(size);
      const vaeFlops = vaeFlopsAt(size);
      const s = {
        type,
        width: size,
        height: size,
        loadSeconds: null,
        textEncodeSeconds: null,
        stepSeconds: null,
        stepCpuSeconds: null,
        vaeDecodeSeconds: null,
        unetGflopsPerCore: null,
        peakRssBytes: null,
        threads,
        modelFile: models[type].path ? models[type].path.slice(root.length + 1) : null,
        modelBytes: models[type].bytes ?? null,
        unetFlopsPerStep: flops.total,
        vaeDecodeFlops: vaeFlops.total,
        stepCpuSecondsAtThreads: null,
        vaeDecodeCpuSeconds: null,
        vaeGflopsPerCore: null,
        textEncodeCpuSeconds: null,
        peakRssBytesAtThreads: null,
        peakRssBytesOneThread: null,
        errors: [],
      };
      scenarios.push(s);
      const { env, error: envError } = args.kernelEnv[type];
      if (Object.keys(env ?? {}).length) s.env = env;
      if (models[type].error || envError) {
        s.errors.push(models[type].error ?? envError);
        runNumber += runsPerScenario;
        continue;
      }
      const job = { mode: "scenario", model: models[type].path, backend: args.backend, flashAttention: args.flashAttention, width: size, height: size, reps: args.reps, vaeReps: args.vaeReps };

      log(`bench: [${++runNumber}/${totalRuns}] ${type} ${size}×${size}, ${threads} threads`);
      const wall = await runChild({ ...job, threads, tag: `${type} ${size} t${threads}` }, args.timeout, env);
      if (wall.error) s.errors.push(`${threads} threads: ${wall.error}`);
      else {
        const r = wall.result;
        Object.assign(s, {
          loadSeconds: r.loadSeconds,
          textEncodeSeconds: r.textEncodeSeconds,
          stepSeconds: r.stepSeconds,
          stepCpuSecondsAtThreads: r.stepCpuSeconds,
          vaeDecodeSeconds: r.vaeDecodeSeconds,
          peakRssBytesAtThreads: r.peakRssBytes,
          stepFirstSeconds: r.stepFirstSeconds,
          stepSamples: r.stepSamples,
          textEncodeFirstSeconds: r.textEncodeFirstSeconds,
          memory: r.memory,
          baselineRssBytes: r.baselineRssBytes,
          rssAfterLoadBytes: r.afterLoadRssBytes,
          peakRssBytesAfter: r.peakRssBytesAfter,
        });
      }

      let one = threads === 1 ? wall : null;
      if (args.cpuRun && threads !== 1) {
        log(`bench: [${++runNumber}/${totalRuns}] ${type} ${size}×${size}, 1 thread`);
        one = await runChild({ ...job, threads: 1, tag: `${type} ${size} t1` }, args.timeout, env);
        if (one.error) s.errors.push(`1 thread: ${one.error}`);
      }
      if (args.cpuRun && one && !one.error) {
        const r = one.result;
        s.stepCpuSeconds = r.stepCpuSeconds;
        s.stepCpuSamples = r.stepSamples.map((x) => x.cpuSeconds);
        s.vaeDecodeCpuSeconds = r.vaeDecodeCpuSeconds;
        s.textEncodeCpuSeconds = r.textEncodeCpuSeconds;
        s.peakRssBytesOneThread = r.peakRssBytes;
        if (r.stepCpuSeconds > 0) s.unetGflopsPerCore = flops.total / r.stepCpuSeconds / 1e9;
        if (r.vaeDecodeCpuSeconds > 0) s.vaeGflopsPerCore = vaeFlops.total / r.vaeDecodeCpuSeconds / 1e9;
        if (s.loadSeconds === null) s.loadSeconds = r.loadSeconds;
      }
      const peaks = [s.peakRssBytesAtThreads, s.peakRssBytesOneThread].filter((x) => x);
      s.peakRssBytes = peaks.length ? Math.max(...peaks) : null;
      if (s.errors.length === 0) delete s.errors;
    }
  }

  return scenarios;
}

/** Phase 4: the table on stdout, and the JSON file. */
async function main() {
  const args = parseArgs(process.argv.slice(2));
  let index;
  try {
    index = await import(pathToFileURL(join(root, "dist/index.js")).href);
  } catch (error) {
    console.error(`bench: cannot load dist/index.js (${error.message.split("\n")[0]}); run \`npm run build\` first`);
    process.exit(1);
  }
  const { OUTPUT_TYPES } = await import(pathToFileURL(join(root, "dist/convert/index.js")).href);
  const unknown = args.types.filter((t) => !OUTPUT_TYPES.includes(baseType(splitVariant(t).type)));
  if (unknown.length) usage(`unknown type ${unknown.join(", ")} (known: ${OUTPUT_TYPES.join(", ")}; ggml's names, case-sensitive)`);
  const sys = index.systemInfo();
  const { native } = await import(pathToFileURL(join(root, "dist/native/addon.js")).href);
  const variantFacts = { q8Kernels: native().diagnostics.q8Kernels(), avx2Plugin: ggmlAvx2Plugin(root, args.ggmlAvx2Plugin) };
  args.matmulVariants = args.matmul && args.kernelVariants ? comparisonVariants(args.types) : [];
  args.kernelEnv = Object.fromEntries([...args.types, ...args.matmulVariants].map((t) => [t, variantEnv(t, variantFacts)]));
  const threads = args.threads ?? sys.threads;
  const commit = git(["rev-parse", "HEAD"]);
  const dirty = commit ? Boolean(git(["status", "--porcelain", "--untracked-files=no"])) : null;
  const unetConfig = JSON.parse(readFileSync(join(root, "test/fixtures/sd1-full-configs/unet/config.json"), "utf8"));
  const vaeConfig = JSON.parse(readFileSync(join(root, "test/fixtures/sd1-full-configs/vae/config.json"), "utf8"));
  const f = 8; // SD v1's VAE scale factor (2^(levels-1))
  const flopsAt = (size) => unetFlops(unetConfig, { latentHeight: size / f, latentWidth: size / f, batch: 2 });
  const vaeFlopsAt = (size) => vaeDecoderFlops(vaeConfig, { latentHeight: size / f, latentWidth: size / f, batch: 1 });

  const e2eLine = args.e2e ? `end to end ${args.e2e.size}×${args.e2e.size}, ${args.e2e.steps} steps, 1 thread` : "";
  const phases = args.safetyCheckerOnly ? "the safety checker only, 1 thread" : args.e2eOnly ? e2eLine : `sizes ${args.sizes.join(", ")}; ${threads} threads${args.cpuRun ? " + 1-thread runs" : ""}; reps ${args.reps}, VAE reps ${args.vaeReps}${e2eLine && `; ${e2eLine}`}${args.safetyChecker ? "; the safety checker" : ""}`;
  log(`bench: types ${args.types.join(", ")}; ${phases}`);
  const started = performance.now();

  const { models, folder } = await prepareModels(args, { root, log, exitIfInterrupted });
  const only = args.e2eOnly || args.safetyCheckerOnly;
  const matmul = only ? {} : await measureMatmul(args);
  const scenarios = only ? [] : await runScenarios(args, models, { threads, flopsAt, vaeFlopsAt });
  const endToEnd = args.safetyCheckerOnly ? [] : await measureEndToEnd(args, models, log);
  const safetyChecker = folder ? await measureSafetyChecker(args, folder, log) : [];
  await report(args, { sys, threads, commit, dirty, flopsAt, vaeFlopsAt, matmul, scenarios, endToEnd, safetyChecker, started });
}

await main();
