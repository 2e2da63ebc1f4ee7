// The bench's end-to-end phase (npm run bench -- --e2e): one whole txt2img through
// `model.generate()` per weight type, 1 thread, in a fresh child process each, reporting its
// process CPU-seconds and their split into text encoding, the sampling steps and the VAE decode.
//
// How the split is taken, inside one generate(): the child wraps the loaded model's
// encodeText / predictNoise / decodeLatents (instance properties shadowing the class's methods,
// which the pipeline calls through lib/pipeline/model-port.ts) and reads `process.cpuUsage()` at
// the phase boundaries:
//   text   = from the call to generate() to the end of its last encodeText (with tokenizing and
//            option checks, well under a millisecond)
//   steps  = from there to the last onProgress (UNet calls, guidance and scheduler arithmetic)
//   VAE    = from there to the end of the last decodeLatents (all tiles, and the tiles' blending
//            except after the last tile)
//   other  = the rest up to generate()'s return (blending after the last tile, RGBA conversion,
//            PNG encoding, freeing the compute buffers)
// The first generate() after loading is the one measured (no warm-up: a run pays its own graph
// builds and first touches of the weights, as a user's single image does).
//
// The scheduler is DPM-Solver++ 2M with Karras sigmas (`dpmpp_2m`, `karras: true`), A1111's
// "DPM++ 2M Karras": what users pick instead of 50 PNDM steps. Each entry says so (`scheduler`
// and `karras`).
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import { runChild } from "./run-child.mjs";

export const E2E_DEFAULTS = { size: 512, steps: 20, scheduler: "dpmpp_2m", karras: true, vaeTiling: "auto" };
export const E2E_SCHEDULER_NOTE = 'dpmpp_2m with Karras sigmas ("DPM++ 2M Karras")';

const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Child side (scripts/bench/child.mjs, job.mode "e2e"): one generate() on a freshly loaded model. */
export async function runEndToEndChild(root, job, log) {
  const { loadModel } = await import(pathToFileURL(join(root, "dist/index.js")).href);
  const { model: path, backend = "cpu", flashAttention, width, height, steps, scheduler, karras, vaeTiling } = job;
  log(`loading ${path} on ${backend} (1 thread${flashAttention ? ", flash attention" : ""})`);
  const model = await loadModel(path, { backend, threads: 1, flashAttention });
  try {
    const calls = { encodeText: { count: 0, cpuSeconds: 0 }, predictNoise: { count: 0, cpuSeconds: 0 }, decodeLatents: { count: 0, cpuSeconds: 0 } };
    const ends = {};
    for (const name of Object.keys(calls)) {
      const method = model[name].bind(model);
      model[name] = async (...a) => {
        const c0 = cpuSeconds();
        try {
          return await method(...a);
        } finally {
          const c1 = cpuSeconds();
          calls[name].count += 1;
          calls[name].cpuSeconds += c1 - c0;
          ends[name] = c1;
        }
      };
    }
    const stepCpuSamples = [];
    let lastProgress = null;
    log(`generate ${width}x${height}, ${steps} steps of ${scheduler}${karras ? " (Karras)" : ""}, VAE tiling ${vaeTiling}`);
    const t0 = performance.now();
    const c0 = cpuSeconds();
    let previous = null;
    const [image] = await model.generate({
      prompt: "富士山の上に浮かぶ赤い風船、油絵",
      width,
      height,
      steps,
      scheduler,
      karras,
      vaeTiling,
      seed: 1,
      onProgress: (p) => {
        const c = cpuSeconds();
        stepCpuSamples.push(c - (previous ?? ends.encodeText ?? c0));
        previous = c;
        if (p.step === p.totalSteps) lastProgress = c;
        log(`step ${p.step}/${p.totalSteps}: ${stepCpuSamples.at(-1).toFixed(2)} CPU-s`);
      },
    });
    const c1 = cpuSeconds();
    const seconds = (performance.now() - t0) / 1000;
    const textEnd = ends.encodeText ?? c0;
    const stepsEnd = lastProgress ?? textEnd;
    const vaeEnd = ends.decodeLatents ?? stepsEnd;
    const result = {
      mode: "e2e",
      cpuSeconds: c1 - c0,
      textEncodeCpuSeconds: textEnd - c0,
      stepsCpuSeconds: stepsEnd - textEnd,
      vaeCpuSeconds: vaeEnd - stepsEnd,
      otherCpuSeconds: c1 - vaeEnd,
      seconds,
      stepCpuSamples,
      calls,
      stepsDone: image.stepsDone ?? steps,
      peakComputeBytes: image.peakComputeBytes ?? null,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
    log(`done: ${result.cpuSeconds.toFixed(2)} CPU-s (text ${result.textEncodeCpuSeconds.toFixed(2)}, steps ${result.stepsCpuSeconds.toFixed(2)}, VAE ${result.vaeCpuSeconds.toFixed(2)} in ${calls.decodeLatents.count} decode(s), other ${result.otherCpuSeconds.toFixed(2)}), ${seconds.toFixed(1)} s wall`);
    return result;
  } finally {
    await model.close();
  }
}

/** Parent side: the phase, one child per type; its entries are the JSON's `endToEnd`. */
export async function measureEndToEnd(args, models, log) {
  const entries = [];
  if (!args.e2e) return entries;
  const { size, steps, vaeTiling } = args.e2e;
  const { scheduler, karras } = E2E_DEFAULTS;
  for (const type of args.types) {
    const e = { type, width: size, height: size, steps, scheduler, cpuSeconds: null, textEncodeCpuSeconds: null, stepsCpuSeconds: null, vaeCpuSeconds: null, karras, threads: 1, vaeTiling, errors: [] };
    entries.push(e);
    const { env, error: envError } = args.kernelEnv[type];
    if (models[type].error || envError) {
      e.errors.push(models[type].error ?? envError);
      continue;
    }
    log(`bench: end to end, ${type} ${size}×${size}, ${steps} steps of ${scheduler}, 1 thread`);
    const job = { mode: "e2e", tag: `e2e ${type} ${size}`, model: models[type].path, backend: args.backend, flashAttention: args.flashAttention, width: size, height: size, steps, scheduler, karras, vaeTiling };
    const r = await runChild(job, args.timeout, env);
    if (r.error) e.errors.push(r.error);
    else {
      // The child's figures under their own names (cpuSeconds, textEncodeCpuSeconds, ..., peakRssBytes).
      const { mode, calls, ...figures } = r.result;
      Object.assign(e, figures, {
        vaeDecodeCalls: calls.decodeLatents.count,
        unetCalls: calls.predictNoise.count,
        callCpuSeconds: Object.fromEntries(Object.entries(calls).map(([k, v]) => [k, v.cpuSeconds])),
      });
    }
    if (e.errors.length === 0) delete e.errors;
  }
  return entries;
}
