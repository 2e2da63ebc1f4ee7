#!/usr/bin/env node
// What a request through `jsd serve` costs on top of the generate() call it makes: the same
// txt2img run directly and through the server's two APIs, alternating, median of N each. A
// benchmark, not a test.
//
//   npm run build && node scripts/server-overhead.mjs [--model file.gguf] [--runs 10] [--size 64] [--steps 20]
//
// Prints a table and one JSON line. The server runs in this process (createServer on 127.0.0.1, a
// free port) with its own copy of the model; previews are on (every step) as `jsd serve` has them.
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({ options: { model: { type: "string" }, runs: { type: "string", default: "10" }, size: { type: "string", default: "64" }, steps: { type: "string", default: "20" } } });
const runs = Number(values.runs);
const size = Number(values.size);
const steps = Number(values.steps);
const { loadModel } = await import(pathToFileURL(join(root, "dist", "index.js")).href);
const { createServer } = await import(pathToFileURL(join(root, "dist", "server", "index.js")).href);

const settings = { prompt: "白い背景に赤い丸", seed: 3, steps, width: size, height: size };
const model = await loadModel(values.model);
const server = await createServer({ model: values.model, port: 0 });
const base = await server.listen();

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function timed(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}
const post = (path, body) => fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

const ways = {
  "generate()": () => model.generate({ ...settings, guidanceScale: 7.5 }),
  "POST /sdapi/v1/txt2img": async () => {
    const r = await post("/sdapi/v1/txt2img", { ...settings, cfg_scale: 7.5, sampler_name: "PNDM" });
    if (r.status !== 200) throw new Error(`txt2img: ${r.status}`);
    await r.json();
  },
  "POST /v1/jobs + events + PNG": async () => {
    const job = await (await post("/v1/jobs", { ...settings, guidanceScale: 7.5 })).json();
    const events = await (await fetch(`${base}/v1/jobs/${job.id}/events`)).text();
    if (!events.includes('"status":"done"')) throw new Error("job did not finish");
    await (await fetch(`${base}/v1/jobs/${job.id}/images/0.png`)).arrayBuffer();
  },
};
const times = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
for (const fn of Object.values(ways)) await fn(); // warm-up
for (let i = 0; i < runs; i++) for (const [name, fn] of Object.entries(ways)) times[name].push(await timed(fn));
await server.close();
await model.close();

const direct = median(times["generate()"]);
console.log(`${size}×${size}, ${steps} steps, median of ${runs} (alternating), model ${values.model ?? "embedded"}`);
console.log("| way | median ms | over generate() |");
console.log("|---|---|---|");
const report = {};
for (const [name, list] of Object.entries(times)) {
  const m = median(list);
  report[name] = { medianMs: Number(m.toFixed(2)), overheadMs: Number((m - direct).toFixed(2)) };
  console.log(`| ${name} | ${m.toFixed(1)} | ${name === "generate()" ? "–" : `+${(m - direct).toFixed(1)} ms (${((m / direct - 1) * 100).toFixed(1)} %)`} |`);
}
console.log(JSON.stringify({ size, steps, runs, ...report }));
