#!/usr/bin/env node
// Builds the native addon from source: fetches ggml's source once (scripts/fetch-ggml.mjs),
// then configures and compiles with cmake-js into build/. Reruns are incremental.
//
// Environment: JSD_CUDA=1, JSD_VULKAN=1, JSD_METAL=1 switch on GPU backends;
// JSD_NATIVE=0 builds a portable CPU backend; JSD_BUILD_DIR changes the output folder;
// JSD_JOBS sets the number of parallel compile jobs; JSD_CUDA_ARCHITECTURES the CUDA targets.
import { spawnSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureGgml } from "./fetch-ggml.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);

function flag(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === "") return fallback;
  return !["0", "off", "false", "no"].includes(value.toLowerCase());
}

function main() {
  const started = Date.now();
  const ggml = ensureGgml();
  const buildDir = resolve(root, process.env.JSD_BUILD_DIR ?? "build");
  const jobs = Number(process.env.JSD_JOBS) || availableParallelism();
  const defines = {
    JSD_GGML_DIR: ggml.dir,
    JSD_GGML_COMMIT: ggml.commit,
    JSD_CUDA: flag("JSD_CUDA", false) ? "ON" : "OFF",
    JSD_VULKAN: flag("JSD_VULKAN", false) ? "ON" : "OFF",
    JSD_METAL: flag("JSD_METAL", false) ? "ON" : "OFF",
    JSD_NATIVE: flag("JSD_NATIVE", true) ? "ON" : "OFF",
    JSD_BUILD_TOOLS: flag("JSD_BUILD_TOOLS", false) ? "ON" : "OFF",
    JSD_PREBUILD: flag("JSD_PREBUILD", false) ? "ON" : "OFF",
  };
  // GPU architectures to compile CUDA kernels for (e.g. "89;90"); ggml's default list is long.
  if (process.env.JSD_CUDA_ARCHITECTURES) defines.CMAKE_CUDA_ARCHITECTURES = process.env.JSD_CUDA_ARCHITECTURES;
  const cmakeJs = join(dirname(require.resolve("cmake-js/package.json")), "bin", "cmake-js");
  const args = [cmakeJs, "build", "--directory", root, "--out", buildDir, "--parallel", String(jobs), "--log-level", "warn"];
  for (const [key, value] of Object.entries(defines)) args.push(`--CD${key}=${value}`);
  const result = spawnSync(process.execPath, args, { stdio: "inherit", cwd: root });
  if (result.status !== 0) {
    console.error(
      `build-native: the native build failed (exit ${result.status ?? result.signal}). ` +
        `It needs cmake >= 3.18, a C++17 compiler and sentencepiece (Debian/Ubuntu: apt-get install cmake g++ libsentencepiece-dev).`,
    );
    process.exit(1);
  }
  process.exitCode = 0;
  console.error(`build-native: built ${join(buildDir, "Release", "jsd.node")} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

try {
  main();
} catch (error) {
  console.error(`build-native: ${error.message}`);
  process.exit(1);
}
