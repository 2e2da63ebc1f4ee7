#!/usr/bin/env node
// The Node half of scripts/gpu-check.sh (read that first).
//
//   node scripts/gpu-check-generate.mjs <tiny-f16.gguf> cuda   generate() on the GPU beside the CPU: devices,
//                                                              placement, memory(), the two pictures'
//                                                              difference, an abort, close(); JSON on stdout
//   node scripts/gpu-check-generate.mjs --prepare <types>      the benchmark's models (bench's cache), made ahead
//   node scripts/gpu-check-generate.mjs --summary <out-dir> <build-s> <total-s>
//                                                              the one JSON summary of a gpu-check run
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

async function generateCheck(modelPath, gpu) {
  const { loadModel, listDevices } = await import(pathToFileURL(join(root, "dist", "index.js")).href);
  const report = { devices: listDevices() };
  const options = { prompt: "白い背景に赤い丸", width: 64, height: 64, steps: 8, seed: 1 };
  const images = {};
  for (const backend of [gpu, "cpu"]) {
    const t0 = performance.now();
    const model = await loadModel(modelPath, { backend });
    try {
      const loaded = performance.now();
      const [image] = await model.generate(options);
      images[backend] = image.rgba;
      report[backend] = {
        loadSeconds: (loaded - t0) / 1000,
        generateSeconds: (performance.now() - loaded) / 1000,
        placement: model.placement(),
        memory: model.memory(),
      };
      if (backend === gpu) {
        const controller = new AbortController();
        const run = model.generate({ ...options, steps: 50, onProgress: (p) => p.step === 2 && controller.abort(), signal: controller.signal });
        report.abort = await run.then(
          () => "not aborted",
          (error) => `${error.name}${error.code ? ` ${error.code}` : ""}: ${error.message}`,
        );
      }
    } finally {
      await model.close();
    }
  }
  let maxDiff = 0;
  for (let i = 0; i < images[gpu].length; i++) maxDiff = Math.max(maxDiff, Math.abs(images[gpu][i] - images.cpu[i]));
  report.maxPixelDifference = maxDiff;
  return report;
}

function readLines(path) {
  return existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean) : [];
}

function parityDigest(path) {
  const results = readLines(path).flatMap((line) => {
    try {
      return [JSON.parse(line)];
    } catch {
      return [];
    }
  });
  const kinds = {};
  for (const r of results) {
    const k = (kinds[r.kind] ??= { passed: 0, failed: 0, skipped: 0, maxAbs: 0, tolerance: r.tolerance });
    if (r.status === "PASS") k.passed++;
    else if (r.status === "FAIL") k.failed++;
    else k.skipped++;
    if (r.stats?.maxAbs !== undefined) k.maxAbs = Math.max(k.maxAbs, r.stats.maxAbs);
  }
  const failures = results.filter((r) => r.status === "FAIL").map((r) => `${r.name}: ${r.stats?.maxAbs ?? ""} ${r.note ?? ""}`.trim());
  const err = readLines(path.replace(/\.jsonl$/, ".err"));
  return { passed: results.filter((r) => r.status === "PASS").length, failed: failures.length, kinds, failures, error: err.slice(-3) };
}

function summary(out, buildSeconds, totalSeconds) {
  const read = (name) => (existsSync(join(out, name)) ? readFileSync(join(out, name), "utf8") : "");
  const json = (name) => {
    try {
      return JSON.parse(read(name));
    } catch {
      return { error: read(name.replace(/\.json$/, ".err")).split("\n").filter(Boolean).slice(-5) };
    }
  };
  const built = !/FAILED|error/i.test(read("build.log").split("\n").slice(-3).join("\n")) && read("doctor.txt").includes("cuda");
  return {
    machine: read("machine.txt").trim().split("\n"),
    plugin: { buildSeconds: Number(buildSeconds), built, buildLogTail: built ? undefined : read("build.log").split("\n").slice(-15) },
    doctor: read("doctor.txt").split("\n").filter((l) => /plugin|cuda|backend|device/i.test(l)),
    parity: { f32: parityDigest(join(out, "parity-f32.jsonl")), f16: parityDigest(join(out, "parity-f16.jsonl")) },
    generate: json("generate.json"),
    bench: { table: read("bench.txt").split("\n").filter(Boolean), errors: read("bench.err").split("\n").filter((l) => /error|fail/i.test(l)).slice(-5) },
    totalSeconds: Number(totalSeconds),
  };
}

/** The full-size random model and the benchmark's conversions of it, where bench looks for them. */
async function prepare(types) {
  const { ensureConverted, ensureRandomFolder } = await import("./bench/models.mjs");
  const cache = join(root, ".cache");
  const log = (message) => console.error(`gpu-check: ${message}`);
  const { folder } = await ensureRandomFolder({ root, cache, log });
  for (const type of types) await ensureConverted({ root, cache, folder, type, log });
}

const args = process.argv.slice(2);
if (args[0] === "--prepare" && args.length === 2) {
  await prepare(args[1].split(","));
} else if (args[0] === "--summary" && args.length === 4) {
  console.log(JSON.stringify(summary(args[1], args[2], args[3]), null, 1));
} else if (args.length === 2) {
  console.log(JSON.stringify(await generateCheck(args[0], args[1]), (key, value) => (typeof value === "bigint" ? String(value) : value), 1));
} else {
  console.error("usage: node scripts/gpu-check-generate.mjs <tiny-f16.gguf> <backend> | --summary <out-dir> <build-seconds> <total-seconds>");
  process.exit(2);
}
