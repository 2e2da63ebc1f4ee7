#!/usr/bin/env node
// Builds the native addon from source: fetches ggml's source once (scripts/fetch-ggml.mjs),
// then configures and compiles with cmake-js into build/. Reruns are incremental.
//
// Environment: JSD_CUDA=1, JSD_VULKAN=1, JSD_METAL=1 also build that GPU backend's ggml plugin
// (libggml-cuda.so ... beside the addon, loaded at run time when it works here);
// JSD_NATIVE=0 builds a portable CPU backend; JSD_CPU_VARIANTS=1 all of ggml's CPU variants
// (prebuilds); JSD_BUILD_DIR changes the output folder;
// JSD_JOBS sets the number of parallel compile jobs; JSD_CUDA_ARCHITECTURES the CUDA targets;
// JSD_VCPKG=1 takes sentencepiece from vcpkg (vcpkg.json) through the toolchain in VCPKG_ROOT
// (or GitHub runners' VCPKG_INSTALLATION_ROOT), for the triplet in VCPKG_TARGET_TRIPLET if set.
//
// Output: build/Release/ holds jsd.node with ggml's shared libraries and plugins beside it
// (node-gyp-build loads build/Release/jsd.node; the addon loads its CPU plugin from that folder).
import { spawnSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureGgml } from "./fetch-ggml.mjs";
import { readFileSync } from "node:fs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const gpuBackends = Object.values(JSON.parse(readFileSync(join(root, "native", "backends.json"), "utf8")).backends).filter((b) => b.gpu);

function flag(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === "") return fallback;
  return !["0", "off", "false", "no"].includes(value.toLowerCase());
}

function main() {
  const started = Date.now();
  const ggml = ensureGgml();
  const buildDir = resolve(root, process.env.JSD_BUILD_DIR || "build");
  const jobs = Number(process.env.JSD_JOBS) || availableParallelism();
  const defines = {
    JSD_GGML_DIR: ggml.dir,
    JSD_GGML_COMMIT: ggml.commit,
    JSD_NATIVE: flag("JSD_NATIVE", true) ? "ON" : "OFF",
    JSD_CPU_VARIANTS: flag("JSD_CPU_VARIANTS", false) ? "ON" : "OFF",
  };
  // The GPU switches and their CMake options come from the one backend table.
  for (const backend of gpuBackends) defines[backend.cmakeOption] = flag(backend.buildFlag, false) ? "ON" : "OFF";
  // GPU architectures to compile CUDA kernels for (e.g. "89;90"); ggml's default list is long.
  if (process.env.JSD_CUDA_ARCHITECTURES) defines.CMAKE_CUDA_ARCHITECTURES = process.env.JSD_CUDA_ARCHITECTURES;
  // vcpkg's toolchain installs vcpkg.json's dependencies (sentencepiece) at configure time; where
  // there is no system sentencepiece (Windows, release builds) that is how CMake finds it.
  if (flag("JSD_VCPKG", false)) {
    const vcpkg = process.env.VCPKG_ROOT || process.env.VCPKG_INSTALLATION_ROOT;
    if (!vcpkg) throw new Error("JSD_VCPKG=1 needs VCPKG_ROOT: the folder vcpkg is installed in");
    defines.CMAKE_TOOLCHAIN_FILE = join(vcpkg, "scripts", "buildsystems", "vcpkg.cmake");
    const triplet = process.env.VCPKG_TARGET_TRIPLET;
    if (triplet) defines.VCPKG_TARGET_TRIPLET = triplet;
    // vcpkg builds sentencepiece on Windows only as a static library with the static C runtime
    // (/MT); every object in the addon must then use that same runtime.
    if (process.platform === "win32" && triplet?.endsWith("-static")) defines.CMAKE_MSVC_RUNTIME_LIBRARY = "MultiThreaded";
  }
  const cmakeJs = join(dirname(require.resolve("cmake-js/package.json")), "bin", "cmake-js");
  const args = [cmakeJs, "build", "--directory", root, "--out", buildDir, "--parallel", String(jobs), "--log-level", "warn"];
  for (const [key, value] of Object.entries(defines)) args.push(`--CD${key}=${value}`);
  const result = spawnSync(process.execPath, args, { stdio: "inherit", cwd: root });
  if (result.status !== 0) {
    console.error(
      `build-native: the native build failed (exit ${result.status ?? result.signal}). ` +
        `It needs cmake >= 3.19, a C++17 compiler and sentencepiece (Debian/Ubuntu: apt-get install cmake g++ libsentencepiece-dev).`,
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
