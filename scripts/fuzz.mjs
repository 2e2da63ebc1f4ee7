#!/usr/bin/env node
// Runs the native libFuzzer harnesses (native/fuzz) on the seed corpora in test/fuzz-corpus.
//
//   node scripts/fuzz.mjs [--seconds N] [--harness NAME]... [--smoke] [--seeds]
//
//   --seconds N     fuzz each harness for N seconds (default 60)
//   --harness NAME  fuzz_model_file or fuzz_tokenizer (repeatable; default: both)
//   --smoke         a CI smoke: 8 seconds each; skips (exit 0) when clang/libFuzzer are missing
//   --seeds         regenerate test/fuzz-corpus/fuzz_model_file and fuzz_tokenizer from
//                   models/tiny-jsd-shapes.gguf and the fixture tokenizer (make_fuzz_seeds)
//
// Configures and builds build-fuzz/ (clang, -DJSD_FUZZ=ON) when needed. The repo's corpus
// folders (test/fuzz-corpus/<harness>/ and test/fuzz-corpus/regressions/<harness>/) are passed
// read-only; inputs libFuzzer finds interesting go to build-fuzz/fuzz-work/<harness>/corpus and
// crash/leak/timeout/oom files to build-fuzz/fuzz-work/<harness>/artifacts (both git-ignored).
// Exit status: 0 no finding (or skipped), 1 a finding, 2 a usage or build error.
//
// Environment: JSD_FUZZ_CXX / JSD_FUZZ_CC pick the compiler (default: the newest clang++-N on
// PATH, then clang++); JSD_JOBS the compile jobs; JSD_FUZZ_BUILD_DIR the build folder.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const HARNESSES = ["fuzz_model_file", "fuzz_tokenizer"];
const corpusRoot = join(root, "test", "fuzz-corpus");

function usage(message) {
  if (message) console.error(`fuzz: ${message}`);
  console.error("usage: node scripts/fuzz.mjs [--seconds N] [--harness NAME]... [--smoke] [--seeds]");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { seconds: undefined, harnesses: [], smoke: false, seeds: false };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--seconds") {
      opts.seconds = Number(value());
      if (!Number.isFinite(opts.seconds) || opts.seconds <= 0) usage("--seconds must be a positive number");
    } else if (a === "--harness") {
      const names = value().split(",");
      for (const name of names) {
        if (!HARNESSES.includes(name)) usage(`unknown harness '${name}' (${HARNESSES.join(", ")})`);
        opts.harnesses.push(name);
      }
    } else if (a === "--smoke") opts.smoke = true;
    else if (a === "--seeds") opts.seeds = true;
    else if (a === "-h" || a === "--help") usage();
    else usage(`unknown argument '${a}'`);
  }
  if (opts.harnesses.length === 0) opts.harnesses = [...HARNESSES];
  opts.seconds ??= opts.smoke ? 8 : 60;
  return opts;
}

function which(cmd) {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

// The clang++ to build with, and whether its libFuzzer runtime is installed.
function findClang() {
  const explicit = process.env.JSD_FUZZ_CXX;
  const candidates = explicit ? [explicit] : [...Array.from({ length: 10 }, (_, i) => `clang++-${22 - i}`), "clang++"];
  for (const cxx of candidates) {
    const path = which(cxx);
    if (!path) continue;
    const cc = process.env.JSD_FUZZ_CC ?? cxx.replace("clang++", "clang");
    const rt = spawnSync(path, ["-print-file-name=libclang_rt.fuzzer-x86_64.a"], { encoding: "utf8" });
    const lib = rt.status === 0 ? rt.stdout.trim() : "";
    // Without the runtime, clang prints the bare name back.
    const hasFuzzer = lib.startsWith("/") && existsSync(lib);
    return { cxx: path, cc: which(cc) ?? cc, hasFuzzer, lib };
  }
  return null;
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: "inherit", cwd: root, ...options });
  return r.status ?? 1;
}

function ggmlDir() {
  const dir = join(root, ".cache", "ggml", "ggml");
  return existsSync(join(dir, "CMakeLists.txt")) ? dir : null;
}

async function ensureBuild(clang, buildDir, targets) {
  let ggml = ggmlDir();
  if (!ggml) {
    const { ensureGgml } = await import("./fetch-ggml.mjs");
    ggml = ensureGgml().dir;
  }
  if (!existsSync(join(buildDir, "build.ninja")) && !existsSync(join(buildDir, "Makefile"))) {
    const generator = which("ninja") ? ["-G", "Ninja"] : [];
    const status = run("cmake", [
      "-S", root, "-B", buildDir, ...generator,
      `-DCMAKE_C_COMPILER=${clang.cc}`, `-DCMAKE_CXX_COMPILER=${clang.cxx}`,
      "-DJSD_BUILD_ADDON=OFF", "-DJSD_FUZZ=ON", "-DJSD_NATIVE=OFF", `-DJSD_GGML_DIR=${ggml}`,
    ]);
    if (status !== 0) throw new Error(`configuring ${relative(root, buildDir)} failed`);
  }
  const jobs = Number(process.env.JSD_JOBS) || availableParallelism();
  const started = Date.now();
  const status = run("cmake", ["--build", buildDir, "--parallel", String(jobs), "--target", ...targets]);
  if (status !== 0) throw new Error(`building ${targets.join(", ")} in ${relative(root, buildDir)} failed`);
  const took = (Date.now() - started) / 1000;
  if (took > 5) console.error(`fuzz: built ${targets.join(", ")} in ${took.toFixed(0)} s`);
}

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(dir, e.name));
}

// Runs one harness for `seconds`, streaming libFuzzer's output through a filter.
function fuzz(buildDir, harness, seconds, smoke) {
  const bin = join(buildDir, "native", "fuzz", harness);
  const work = join(buildDir, "fuzz-work", harness);
  const corpus = join(work, "corpus");
  const artifacts = join(work, "artifacts");
  // A smoke starts from the repo's corpus alone, so its result does not depend on earlier runs.
  if (smoke) rmSync(corpus, { recursive: true, force: true });
  mkdirSync(corpus, { recursive: true });
  mkdirSync(artifacts, { recursive: true });
  const before = new Set(listFiles(artifacts));
  const seedDirs = [join(corpusRoot, harness), join(corpusRoot, "regressions", harness)].filter(existsSync);
  const args = [
    `-max_total_time=${Math.round(seconds)}`,
    `-artifact_prefix=${artifacts}/`,
    "-print_final_stats=1",
    "-timeout=30",
    "-rss_limit_mb=2560",
    "-max_len=1048576",
    corpus,
    ...seedDirs,
  ];
  const env = {
    ...process.env,
    ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? "detect_leaks=1:abort_on_error=0:allocator_may_return_null=1",
    // UBSan's options (halt, stack traces, native/fuzz/ubsan.supp) are compiled into the harnesses.
  };
  console.error(`fuzz: ${harness} for ${seconds} s (seeds: ${seedDirs.map((d) => relative(root, d)).join(", ")})`);
  return new Promise((resolveRun) => {
    const child = spawn(bin, args, { cwd: work, env, stdio: ["ignore", "pipe", "pipe"] });
    let tail = "";
    let execs = null;
    let lastStatus = "";
    let partial = "";
    const onData = (chunk) => {
      const text = chunk.toString();
      tail = (tail + text).slice(-20000);
      const lines = (partial + text).split("\n");
      partial = lines.pop();
      for (const line of lines) {
        const m = /stat::number_of_executed_units:\s*(\d+)/.exec(line);
        if (m) execs = Number(m[1]);
        if (/^#\d+\s+(INITED|DONE|pulse)/.test(line)) lastStatus = line.trim();
        if (/^#\d+\s+(INITED|DONE)/.test(line)) console.error(`  ${line.trim()}`);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    // libFuzzer stops itself at max_total_time; this guards against a hang in start-up.
    const guard = setTimeout(() => child.kill("SIGKILL"), (seconds + 300) * 1000);
    child.on("close", (code, signal) => {
      clearTimeout(guard);
      const found = listFiles(artifacts).filter((f) => !before.has(f));
      const finding = code !== 0 || found.length > 0;
      if (execs === null) {
        const m = /^#(\d+)/.exec(lastStatus);
        if (m) execs = Number(m[1]);
      }
      console.error(`fuzz: ${harness}: ${execs ?? "?"} executions${finding ? "" : ", no finding"}`);
      if (finding) {
        console.error(tail.split("\n").filter((l) => !/^#\d+\s/.test(l)).slice(-80).join("\n"));
        console.error(`fuzz: ${harness}: FINDING (exit ${code ?? signal})`);
        for (const f of found) console.error(`fuzz:   crash input: ${f}`);
        console.error(`fuzz:   reproduce: ${relative(root, bin)} <crash input>`);
        console.error(`fuzz:   minimize:  ${relative(root, bin)} -minimize_crash=1 -runs=100000 <crash input>`);
      }
      resolveRun({ harness, execs, finding, artifacts: found });
    });
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const buildDir = resolve(root, process.env.JSD_FUZZ_BUILD_DIR ?? "build-fuzz");
  const clang = findClang();
  const missing = !clang ? "no clang++ on PATH" : !clang.hasFuzzer ? `${clang.cxx} has no libFuzzer runtime` : null;
  if (missing) {
    const hint = "Debian/Ubuntu: apt-get install clang-14 libclang-rt-14-dev (or set JSD_FUZZ_CXX)";
    if (opts.smoke) {
      console.error(`fuzz: smoke skipped: ${missing}. ${hint}`);
      process.exit(0);
    }
    console.error(`fuzz: ${missing}. ${hint}`);
    process.exit(2);
  }
  for (const tool of ["cmake"]) {
    if (!which(tool)) {
      if (opts.smoke) {
        console.error(`fuzz: smoke skipped: ${tool} not found`);
        process.exit(0);
      }
      usage(`${tool} not found`);
    }
  }
  const targets = opts.seeds ? [...opts.harnesses, "make_fuzz_seeds"] : opts.harnesses;
  await ensureBuild(clang, buildDir, targets);

  if (opts.seeds) {
    const status = run(join(buildDir, "native", "fuzz", "make_fuzz_seeds"), [join(root, "models", "tiny-jsd-shapes.gguf"), corpusRoot], {
      env: { ...process.env, ASAN_OPTIONS: "detect_leaks=1" },
    });
    if (status !== 0) throw new Error("make_fuzz_seeds failed");
  }

  const results = [];
  for (const harness of opts.harnesses) results.push(await fuzz(buildDir, harness, opts.seconds, opts.smoke));
  const findings = results.filter((r) => r.finding);
  console.error(
    `fuzz: ${results.map((r) => `${r.harness} ${r.execs ?? "?"} execs`).join(", ")}; ` +
      (findings.length ? `${findings.length} harness(es) with a finding` : "no finding"),
  );
  process.exit(findings.length ? 1 : 0);
}

main().catch((error) => {
  console.error(`fuzz: ${error.message}`);
  process.exit(2);
});
