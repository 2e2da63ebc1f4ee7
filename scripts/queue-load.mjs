#!/usr/bin/env node
// A load test of the queue (BullMQ on Redis): N small jobs through 1, then 2 `jsd worker`
// processes, against the same generate() run directly. A benchmark, not a test: loopback only,
// bounded in count and time.
//
//   npm run build && node scripts/queue-load.mjs [--jobs 200] [--workers 1,2] [--size 64] [--steps 4]
//
// Starts its own redis-server (Debian's) on a free loopback port without persistence. Jobs are
// queued all at once with createProducer().enqueue() (what `jsd serve --redis` does per request);
// latency is from enqueue to the "finished" event with the PNG read back. Each worker uses one
// thread (--threads 1). Prints a table and one JSON line.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "dist", "cli", "main.js");
const { values } = parseArgs({ options: { jobs: { type: "string", default: "200" }, workers: { type: "string", default: "1,2" }, size: { type: "string", default: "64" }, steps: { type: "string", default: "4" }, timeout: { type: "string", default: "600" } } });
const jobs = Number(values.jobs);
const counts = values.workers.split(",").map(Number);
const settings = { prompt: "白い背景に赤い丸", width: Number(values.size), height: Number(values.size), steps: Number(values.steps) };
const deadline = Date.now() + Number(values.timeout) * 1000;
const { loadModel } = await import(pathToFileURL(join(root, "dist", "index.js")).href);
const { createProducer } = await import(pathToFileURL(join(root, "dist", "queue", "index.js")).href);

const freePort = () => new Promise((res) => { const s = createServer(); s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => res(port)); }); });
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The direct figure: the same job's generate() in this process, one thread, median of 20.
const model = await loadModel(undefined, { threads: 1 });
const direct = [];
for (let i = 0; i < 21; i++) {
  const t0 = performance.now();
  await model.generate({ ...settings, seed: i });
  if (i > 0) direct.push(performance.now() - t0);
}
await model.close();
const directMs = pct(direct, 50);

const report = { jobs, settings, directMs: Number(directMs.toFixed(2)), runs: {} };
for (const n of counts) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "jsd-load-redis-"));
  const redis = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  while (spawnSync("redis-cli", ["-p", String(port), "ping"], { encoding: "utf8" }).stdout.trim() !== "PONG") await sleep(50);
  const url = `redis://127.0.0.1:${port}`;
  const workers = Array.from({ length: n }, (_, i) => spawn(process.execPath, [cli, "worker", "--redis", url, "--name", `load-${i}`, "--threads", "1", "--preview-ms", "0"], { stdio: ["ignore", "ignore", "pipe"] }));
  await Promise.all(workers.map((w) => new Promise((res) => w.stderr.on("data", (d) => /jsd worker/.test(String(d)) && res()))));
  const producer = createProducer({ redis: url, limits: { maxQueue: jobs + 10 } });
  const latencies = [];
  const byWorker = {};
  const t0 = performance.now();
  const handles = [];
  for (let i = 0; i < jobs; i++) {
    const submitted = performance.now();
    const job = await producer.enqueue({ ...settings, seed: i });
    handles.push(job.result().then(() => {
      latencies.push(performance.now() - submitted);
      byWorker[job.job.worker] = (byWorker[job.job.worker] ?? 0) + 1;
    }));
  }
  await Promise.race([Promise.all(handles), sleep(Math.max(0, deadline - Date.now())).then(() => { throw new Error("the load test ran out of time"); })]);
  const seconds = (performance.now() - t0) / 1000;
  await producer.close();
  for (const w of workers) w.kill("SIGTERM");
  await Promise.all(workers.map((w) => new Promise((res) => (w.exitCode !== null ? res() : w.on("exit", res)))));
  redis.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
  const perJobMs = (seconds * 1000 * n) / jobs; // worker-time per job
  report.runs[n] = {
    jobsPerSecond: Number((jobs / seconds).toFixed(2)),
    p50Ms: Number(pct(latencies, 50).toFixed(1)),
    p95Ms: Number(pct(latencies, 95).toFixed(1)),
    workerMsPerJob: Number(perJobMs.toFixed(2)),
    overheadMsPerJob: Number((perJobMs - directMs).toFixed(2)),
    byWorker,
  };
}
console.log(`${jobs} jobs of ${settings.width}×${settings.height}, ${settings.steps} steps; direct generate() ${directMs.toFixed(1)} ms (median, 1 thread)`);
console.log("| workers | jobs/s | p50 latency | p95 latency | worker-ms per job | overhead per job |");
console.log("|---|---|---|---|---|---|");
for (const [n, r] of Object.entries(report.runs)) console.log(`| ${n} | ${r.jobsPerSecond} | ${r.p50Ms} ms | ${r.p95Ms} ms | ${r.workerMsPerJob} | ${r.overheadMsPerJob} ms |`);
console.log(JSON.stringify(report));
process.exit(0);
