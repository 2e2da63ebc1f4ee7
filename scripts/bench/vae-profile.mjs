#!/usr/bin/env node
// Where a VAE decode's time goes, tiled and untiled (docs/benchmark.md, "Where the VAE's time goes"):
//
//   node scripts/bench/vae-profile.mjs --model .cache/sd1-random-q8_0.gguf --size 512 [--tiling off,on] [--profile]
//
// Loads the model with 1 thread and decodes one image of random latents per tiling mode, the way
// generate() does (untiled: model.decodeLatents; tiled: lib/pipeline/vae-tiles.ts's
// decodeLatentsTiled with its default tiles), and prints the process CPU-seconds of each
// decodeLatents call (a tiled decode's first tile also builds and allocates the tile graph, the
// others reuse it) and of the whole decode.
// --profile runs the same in a child with JSD_PROFILE=1 (native/tools/profile.cpp: the graph
// computed one node at a time, seconds per op) and sums the op table over each mode's graphs
// (the 4 tiles of a tiled 512×512 decode), largest first, with each op's share.
import { spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const args = { model: join(root, ".cache/sd1-random-q8_0.gguf"), size: 512, tiling: ["off", "on"], profile: false };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === "--model") args.model = resolve(process.argv[++i]);
  else if (a === "--size") args.size = Number(process.argv[++i]);
  else if (a === "--tiling") args.tiling = process.argv[++i].split(",");
  else if (a === "--profile") args.profile = true;
  else {
    console.error(`vae-profile: unknown option ${a}`);
    process.exit(2);
  }
}

const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function decodeAll() {
  const { loadModel } = await import(pathToFileURL(join(root, "dist/index.js")).href);
  const { decodeLatentsTiled } = await import(pathToFileURL(join(root, "dist/pipeline/vae-tiles.js")).href);
  const model = await loadModel(args.model, { threads: 1 });
  try {
    const f = model.vaeScaleFactor;
    const shape = [1, model.latentChannels, args.size / f, args.size / f];
    const z = new Float32Array(shape.reduce((a, b) => a * b)).map((_, i) => Math.sin(i * 12.9898) / model.scalingFactor);
    const decode = model.decodeLatents.bind(model);
    for (const mode of args.tiling) {
      process.stderr.write(`== tiling ${mode}\n`);
      const calls = [];
      model.decodeLatents = async (latents, s) => {
        const c0 = cpuSeconds();
        const out = await decode(latents, s);
        calls.push({ shape: s.join("x"), cpuSeconds: cpuSeconds() - c0 });
        return out;
      };
      const c0 = cpuSeconds();
      const t0 = performance.now();
      await (mode === "on" ? decodeLatentsTiled(model, z, shape) : model.decodeLatents(z, shape));
      const total = cpuSeconds() - c0;
      const callsCpu = calls.reduce((a, c) => a + c.cpuSeconds, 0);
      console.log(`${args.size}×${args.size} tiling ${mode}: ${total.toFixed(2)} CPU-s (${((performance.now() - t0) / 1000).toFixed(1)} s wall), ${calls.length} decodeLatents call(s) [${calls.map((c) => `${c.shape} ${c.cpuSeconds.toFixed(2)}`).join(", ")}], outside them ${(total - callsCpu).toFixed(2)} CPU-s`);
      await model.releaseComputeBuffers();
    }
  } finally {
    await model.close();
  }
}

async function profile() {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--model", args.model, "--size", String(args.size), "--tiling", args.tiling.join(",")], {
    env: { ...process.env, JSD_PROFILE: "1" },
    stdio: ["ignore", "inherit", "pipe"],
  });
  let text = "";
  child.stderr.on("data", (d) => (text += d));
  const code = await new Promise((done) => child.on("close", done));
  if (code !== 0) {
    process.stderr.write(text);
    process.exit(code ?? 1);
  }
  let mode;
  const byMode = {};
  for (const line of text.split("\n")) {
    let m;
    if ((m = /^== tiling (\S+)/.exec(line))) mode = byMode[m[1]] = { graphs: 0, seconds: 0, ops: {} };
    else if ((m = /^profile vae decode \S+: \d+ nodes, ([\d.]+) s/.exec(line)) && mode) {
      mode.graphs += 1;
      mode.seconds += Number(m[1]);
    } else if ((m = /^ {2}(.+?)\s+(\d+) nodes\s+([\d.]+) s/.exec(line)) && mode) {
      const op = (mode.ops[m[1]] ??= { nodes: 0, seconds: 0 });
      op.nodes += Number(m[2]);
      op.seconds += Number(m[3]);
    }
  }
  for (const [name, r] of Object.entries(byMode)) {
    console.log(`\nprofile, tiling ${name}: ${r.graphs} graph(s), ${r.seconds.toFixed(2)} s summed over nodes`);
    for (const [op, o] of Object.entries(r.ops).sort((a, b) => b[1].seconds - a[1].seconds).slice(0, 14)) {
      console.log(`  ${op.padEnd(28)} ${String(o.nodes).padStart(5)} nodes ${o.seconds.toFixed(2).padStart(8)} s ${((100 * o.seconds) / r.seconds).toFixed(1).padStart(5)} %`);
    }
  }
}

await (args.profile ? profile() : decodeAll());
