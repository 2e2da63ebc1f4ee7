// The bench's last phase: the Markdown tables on stdout and the JSON file (scripts/bench.mjs runs
// the phases; docs/benchmark.md explains the figures). The JSON's keys are read by other tools:
// add to them, never rename.
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { dirname } from "node:path";
import { E2E_SCHEDULER_NOTE } from "./end-to-end.mjs";
import { MATMUL_SHAPES } from "./shapes.mjs";

const log = (message) => process.stderr.write(`${message}\n`);

function cpuModel() {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) return m[1].trim();
  } catch {}
  return cpus()[0]?.model?.trim() ?? "unknown";
}

const dash = "–";
function fmt(value, digits = 2) {
  return value === null || value === undefined || !Number.isFinite(value) ? dash : value.toFixed(digits);
}
function fmtSeconds(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return dash;
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}
function fmtGiB(bytes) {
  return bytes ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : dash;
}
function table(header, rows) {
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
  for (const r of rows) lines.push(`| ${r.join(" | ")} |`);
  return lines.join("\n");
}
function oneLine(text, max = 160) {
  const s = String(text).replace(/\s+/g, " ").replace(/\|/g, "/");
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** Phase 4: prints the tables and writes the JSON. */
export async function report(args, { sys, threads, commit, dirty, flopsAt, vaeFlopsAt, matmul, scenarios, endToEnd = [], safetyChecker = [], started }) {
  const json = {
    commit,
    cpu: cpuModel(),
    threads,
    matmulGflopsPerCore: Object.fromEntries(Object.entries(matmul).map(([t, m]) => [t, m.gflopsPerCore])),
    scenarios,
    commitDirty: dirty,
    cpuFlags: sys.cpuFeatures,
    ggmlCpuFeatures: sys.ggmlCpuFeatures,
    ggml: sys.ggmlBuild,
    backends: sys.backends,
    logicalCores: sys.logicalCores,
    node: process.versions.node,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
    options: { backend: args.backend, quick: args.quick, sizes: args.sizes, reps: args.reps, vaeReps: args.vaeReps, flashAttention: args.flashAttention, cpuRun: args.cpuRun, matmulRuns: args.matmulRuns, e2e: args.e2e, e2eOnly: Boolean(args.e2eOnly) },
    unetFlopsPerStep: Object.fromEntries(args.sizes.map((s) => [`${s}x${s}`, flopsAt(s).total])),
    vaeDecodeFlops: Object.fromEntries(args.sizes.map((s) => [`${s}x${s}`, vaeFlopsAt(s).total])),
    matmul,
    endToEnd,
    safetyChecker,
    seconds: (performance.now() - started) / 1000,
  };

  const out = [];
  out.push(
    `## japanese-stable-diffusion ${sys.version} bench: ${commit ? commit.slice(0, 10) : "no commit"}${dirty ? " (uncommitted changes)" : ""}`,
    "",
    `CPU: ${json.cpu}, ${sys.logicalCores} logical cores; ggml ${sys.ggmlBuild}, backends ${sys.backends.join(", ")}; ggml CPU features: ${sys.ggmlCpuFeatures.join(" ")}`,
    `Threads ${threads} (wall-time columns)${args.cpuRun ? " and 1 (CPU-second columns)" : "; 1-thread runs skipped (--no-cpu-run)"}; flash attention ${args.flashAttention ? "on" : "off"}; UNet step = median of ${args.reps} after 1 warm-up; VAE = median of ${args.vaeReps}, no warm-up.`,
    `UNet FLOPs per step with guidance (batch 2): ${args.sizes.map((s) => `${s}×${s} ${(flopsAt(s).total / 1e12).toFixed(3)} TFLOP`).join(", ")}; VAE decode: ${args.sizes.map((s) => `${s}×${s} ${(vaeFlopsAt(s).total / 1e12).toFixed(3)} TFLOP`).join(", ")}.`,
    "",
  );
  const rows = [];
  for (const s of scenarios) {
    const base = [s.type, `${s.width}×${s.height}`];
    if (s.stepSeconds === null && s.stepCpuSeconds === null) {
      rows.push([...base, `**failed**: ${oneLine((s.errors ?? []).join("; "))}`, "", "", "", "", "", "", "", ""]);
      continue;
    }
    rows.push([
      ...base,
      fmtSeconds(s.loadSeconds),
      fmtSeconds(s.textEncodeSeconds),
      fmtSeconds(s.stepSeconds),
      fmtSeconds(s.stepCpuSeconds),
      fmt(s.unetGflopsPerCore, 1),
      fmtSeconds(s.vaeDecodeSeconds),
      fmtSeconds(s.vaeDecodeCpuSeconds),
      fmtGiB(s.peakRssBytes),
      s.errors ? `**partly failed**: ${oneLine(s.errors.join("; "), 100)}` : s.modelBytes ? `${(s.modelBytes / 2 ** 30).toFixed(2)} GiB file` : "",
    ]);
  }
  if (scenarios.length > 0) out.push(
    table(["type", "size", "load s", "text s", `step s (${threads} thr)`, "step CPU-s (1 thr)", "UNet GFLOP/s/core", `VAE s (${threads} thr)`, "VAE CPU-s (1 thr)", "peak RSS", "notes"], rows),
  );
  if (args.matmul && Object.keys(matmul).length > 0) {
    out.push("", "Matrix products as the engine runs them (ggml mul_mat; q8_0, and q4_0, through native/kernels/q8_gemm.cpp where the CPU has AVX2; q4_K (and q4_0 elsewhere) repacked by ggml; kernel variants as scripts/bench/kernels.mjs forces them), 1 thread, GFLOP/s per core (weights [k,m] × f32 [k,n]; shapes in scripts/bench/shapes.mjs; – = k not a multiple of the type's block):", "");
    const mrows = Object.keys(matmul).map((type) => {
      const m = matmul[type];
      if (m.skipped) return [type, "", `skipped: ${oneLine(m.skipped)}`, ...MATMUL_SHAPES.map(() => "")];
      if (m.error) return [type, "", `**failed**: ${oneLine(m.error)}`, ...MATMUL_SHAPES.map(() => "")];
      return [type, m.kernel ?? dash, fmt(m.gflopsPerCore, 1), ...MATMUL_SHAPES.map((sh) => fmt(m.shapes.find((x) => x.name === sh.name)?.gflopsPerCore, 1))];
    });
    out.push(table(["type", "kernel", "mean", ...MATMUL_SHAPES.map((sh) => `${sh.short} m${sh.m} k${sh.k} n${sh.n}`)], mrows));
  }
  if (endToEnd.length > 0) {
    out.push("", `End to end: one txt2img through generate(), 1 thread, first run after loading; scheduler ${E2E_SCHEDULER_NOTE}; CPU-seconds (user + sys) split at the phase boundaries (docs/benchmark.md):`, "");
    const erows = endToEnd.map((e) => {
      const base = [e.type, `${e.width}×${e.height}`, String(e.steps), `${e.scheduler}${e.karras ? " Karras" : ""}`];
      if (e.cpuSeconds === null) return [...base, `**failed**: ${oneLine((e.errors ?? []).join("; "))}`, "", "", "", "", "", ""];
      const share = (x) => `${fmtSeconds(x)} (${((100 * x) / e.cpuSeconds).toFixed(0)} %)`;
      return [...base, fmtSeconds(e.cpuSeconds), share(e.textEncodeCpuSeconds), `${share(e.stepsCpuSeconds)}, ${fmtSeconds(e.stepsCpuSeconds / e.unetCalls)}/step`, `${share(e.vaeCpuSeconds)}${e.vaeDecodeCalls > 1 ? `, ${e.vaeDecodeCalls} tiles` : ", untiled"}`, fmtSeconds(e.otherCpuSeconds), fmtSeconds(e.seconds), fmtGiB(e.peakRssBytes)];
    });
    out.push(table(["type", "size", "steps", "scheduler", "total CPU-s", "text encoder", "steps", "VAE", "other", "wall s", "peak RSS"], erows));
  }
  if (safetyChecker.length > 0) {
    out.push("", "Safety checker (full-size random CLIP ViT-L/14 checker), 1 thread, CPU-seconds per 512×512 image: the feature extractor, the vision tower (median after a warm-up), and per image in a batch of 4:", "");
    const srows = safetyChecker.map((e) =>
      e.cpuSecondsPerImage === null
        ? [e.type, `**failed**: ${oneLine((e.errors ?? []).join("; "))}`, "", "", "", ""]
        : [e.type, fmtSeconds(e.cpuSecondsPerImage), fmtSeconds(e.featureExtractorCpuSeconds), fmtSeconds(e.embedCpuSeconds), fmtSeconds(e.embedBatch4CpuSecondsPerImage), fmtGiB(e.peakRssBytes)],
    );
    out.push(table(["type", "CPU-s per image", "feature extractor", "vision tower", "vision tower, batch of 4 (per image)", "peak RSS"], srows));
  }
  console.log(out.join("\n"));

  if (args.json) {
    await mkdir(dirname(args.json), { recursive: true });
    await writeFile(args.json, JSON.stringify(json, null, 2) + "\n");
    log(`bench: wrote ${args.json}`);
  }
  const failed = [...scenarios, ...endToEnd, ...safetyChecker].filter((s) => s.errors).length + Object.values(matmul).filter((m) => m.error).length;
  log(`bench: done in ${((performance.now() - started) / 1000).toFixed(0)} s${failed ? `, ${failed} with failures (see the table)` : ""}`);
}

