#!/usr/bin/env node
// Memory of one whole txt2img run, each configuration in a fresh process (peak RSS is per process):
//
//   node scripts/bench/txt2img-memory.mjs --model .cache/sd1-random-q4_0.gguf [--size 512] [--steps 2]
//        [--tiling auto,on,off] [--threads N] [--release-idle-weights] [--json]
//
// Prints, per VAE tiling setting, the process's peak RSS (what /usr/bin/time -v reports; it counts
// the touched pages of the memory-mapped weights and Node itself), the engine's peak compute
// buffers of the run (image.peakComputeBytes) and the weights per network and buffer (memory()).
// Needs `npm run build` (dist/) and a model file (npm run bench makes the random full-size ones).
import { fork } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

async function child(job) {
  const { loadModel } = await import(pathToFileURL(join(root, "dist/index.js")).href);
  const model = await loadModel(job.model, { ...(job.threads ? { threads: job.threads } : {}), releaseIdleWeights: job.releaseIdleWeights });
  const started = performance.now();
  const [image] = await model.generate({
    prompt: "富士山と桜、油絵",
    width: job.size,
    height: job.size,
    steps: job.steps,
    seed: 1,
    vaeTiling: job.tiling === "auto" ? "auto" : job.tiling === "on",
  });
  const seconds = (performance.now() - started) / 1000;
  const weights = model.memory().map(({ name, backend, weightBytes, mappedBytes, packedBytes, deviceBytes }) => ({ name, backend, weightBytes, mappedBytes, packedBytes, deviceBytes }));
  await model.close();
  return { tiling: job.tiling, releaseIdleWeights: job.releaseIdleWeights, seconds, peakRssBytes: process.resourceUsage().maxRSS * 1024, peakComputeBytes: image.peakComputeBytes, weights };
}

if (process.argv[2] === "--child") {
  process.send(await child(JSON.parse(process.argv[3])));
  process.exit(0);
}

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    size: { type: "string", default: "512" },
    steps: { type: "string", default: "2" },
    tiling: { type: "string", default: "auto,on,off" },
    threads: { type: "string" },
    "release-idle-weights": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
if (!values.model) {
  console.error("usage: node scripts/bench/txt2img-memory.mjs --model <file.gguf> [--size 512] [--steps 2] [--tiling auto,on,off] [--threads N] [--release-idle-weights] [--json]");
  process.exit(2);
}
const results = [];
for (const tiling of values.tiling.split(",")) {
  const job = { model: resolve(values.model), size: Number(values.size), steps: Number(values.steps), tiling, threads: values.threads ? Number(values.threads) : undefined, releaseIdleWeights: values["release-idle-weights"] };
  const result = await new Promise((done, fail) => {
    const p = fork(fileURLToPath(import.meta.url), ["--child", JSON.stringify(job)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let got;
    p.on("message", (m) => (got = m));
    p.on("exit", (code, signal) => (got ? done(got) : fail(new Error(`tiling ${tiling}: child exited with ${code ?? signal}`))));
  });
  results.push(result);
  if (!values.json) {
    const w = result.weights.map((c) => `${c.name} ${mib(c.weightBytes)}`).join(", ");
    const release = job.releaseIdleWeights ? ", idle weights released" : "";
    console.log(`${values.size}x${values.size}, ${values.steps} steps, VAE tiling ${tiling}${release}: peak RSS ${mib(result.peakRssBytes)}, peak compute buffers ${mib(result.peakComputeBytes)}, ${result.seconds.toFixed(1)} s (weights: ${w})`);
  }
}
if (values.json) console.log(JSON.stringify({ model: values.model, size: Number(values.size), steps: Number(values.steps), results }, null, 2));
