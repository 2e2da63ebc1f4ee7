#!/usr/bin/env node
// npm run prebuild: a portable binary for this platform in prebuilds/<platform>-<arch>/, where
// node-gyp-build finds it before any local build; CPU only, except that on darwin-arm64 Metal is
// compiled in (see mainHasMetal). ggml's CPU kernels are built for a
// baseline instead of this machine (x86-64: AVX2/FMA/F16C, i.e. x86-64-v3; arm64: NEON), and
// the shared libraries the addon needs beyond the C/C++ runtime (sentencepiece) are copied
// beside it, found through an $ORIGIN rpath, so users need no compiler and no libsentencepiece.
//
// npm run prebuild -- --backend cuda|vulkan|metal: the same with that GPU backend switched on,
// built in build-prebuild-<backend>/ and written to prebuilds-<backend>/<platform>-<arch>/, so
// the CPU prebuild is left alone (node-gyp-build would take any binary in prebuilds/ for this
// platform, GPU or not). scripts/variant-package.mjs turns that folder into the optional package
// @japanese-stable-diffusion/<platform>-<arch>-<backend>. GPU driver and vendor runtime libraries
// are not copied (see `external` below).
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const BACKENDS = ["cuda", "vulkan", "metal"];

function parseBackend(args) {
  const i = args.findIndex((a) => a === "--backend" || a.startsWith("--backend="));
  if (i < 0) return undefined;
  const value = args[i].includes("=") ? args[i].slice("--backend=".length) : args[i + 1];
  if (!BACKENDS.includes(value)) {
    console.error(`prebuild: --backend must be one of ${BACKENDS.join(", ")}, got ${value ?? "nothing"}`);
    process.exit(2);
  }
  return value;
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const backend = parseBackend(process.argv.slice(2));
const buildDir = join(root, backend ? `build-prebuild-${backend}` : "build-prebuild");
const target = join(root, backend ? `prebuilds-${backend}` : "prebuilds", `${process.platform}-${process.arch}`);

const env = { ...process.env, JSD_NATIVE: "0", JSD_PREBUILD: "1", JSD_BUILD_DIR: buildDir };
// The main package's binary is CPU-only except on Apple Silicon: every such Mac has Metal, and
// ggml still offers the CPU device beside it, so Metal is compiled in there (no Metal package).
const mainHasMetal = !backend && process.platform === "darwin" && process.arch === "arm64";
// Every GPU flag is set explicitly, so that a JSD_CUDA=1 left in the shell cannot turn the CPU
// prebuild into a CUDA one.
for (const b of BACKENDS) env[`JSD_${b.toUpperCase()}`] = b === backend || (b === "metal" && mainHasMetal) ? "1" : "0";
const build = spawnSync(process.execPath, [join(root, "scripts", "build-native.mjs")], { stdio: "inherit", env });
if (build.status !== 0) process.exit(build.status ?? 1);

rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
const addon = join(buildDir, "Release", "jsd.node");
// node-gyp-build reads tags from the name: "node.napi.node" = any Node version with N-API.
copyFileSync(addon, join(target, "node.napi.node"));

if (process.platform === "linux") {
  // Ship the shared libraries that are not part of a standard Linux system.
  const system = /^(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux.*|linux-vdso)\.so/;
  // Never shipped: the GPU driver's own libraries must match the installed kernel driver
  // (libcuda, libnvidia-*), the Vulkan loader finds the system's drivers (libvulkan), and the
  // CUDA runtime (libcudart, libcublas, libcublasLt: hundreds of MB) comes from the user's CUDA 12
  // install. Where they are missing, the probe in lib/native-probe.ts fails and the CPU binary runs.
  const external = /^(libcuda|libnvidia-[\w-]+|libcudart|libcublas|libcublasLt|libvulkan)\.so/;
  const ldd = execFileSync("ldd", [addon], { encoding: "utf8" });
  for (const line of ldd.split("\n")) {
    const m = /^\s*(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?\s*$/.exec(line);
    if (!m || system.test(m[1]) || external.test(m[1])) continue;
    if (m[2] === "not found") {
      console.error(`prebuild: ${basename(addon)} needs ${m[1]}, which is not installed here`);
      process.exit(1);
    }
    copyFileSync(m[2], join(target, m[1]));
  }
}
console.error(`prebuild: ${target}: ${readdirSync(target).join(", ")}`);
const needs = process.platform !== "linux" ? "the system runtime only" : backend ? `glibc, libstdc++ and the ${backend} driver/runtime` : "glibc and libstdc++ only";
console.error(`prebuild: ${basename(addon)} needs ${needs}`);
