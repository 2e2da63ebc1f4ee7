#!/usr/bin/env node
// npm run prebuild: a portable binary for this platform in prebuilds/<platform>-<arch>/, where
// node-gyp-build finds it before any local build. Beside the addon (node.napi.node) lie ggml's
// shared libraries (libggml-base, libggml) and its CPU backend as ggml's CPU variant plugins
// (GGML_CPU_ALL_VARIANTS: x64 from plain SSE2 up to AVX-512 and AMX, arm64 by instruction-set
// level): at run time native/runtime/backend_loader.cpp loads the best variant the CPU can run, so one
// prebuild runs on any CPU of its architecture at that CPU's speed. The shared libraries the
// addon needs beyond the C/C++ runtime (sentencepiece) are copied too, found through the $ORIGIN
// rpath, so users need no compiler and no libsentencepiece.
//
// GPU backends are not built here: they are ggml plugins from node-llama-cpp's binary packages
// of the same ggml release (`jsd gpu install <backend>`, docs/gpu.md) or from a local build.
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const buildDir = join(root, "build-prebuild");
const target = join(root, "prebuilds", `${process.platform}-${process.arch}`);

// ggml builds CPU variants for x86 and for Arm on Linux, Android and macOS; elsewhere one
// portable CPU backend. Every GPU flag is set off explicitly, so that a JSD_CUDA=1 left in the
// shell cannot put a GPU plugin into the package.
const variants = process.arch === "x64" || (process.arch === "arm64" && process.platform !== "win32");
const env = {
  ...process.env,
  JSD_NATIVE: "0",
  JSD_CPU_VARIANTS: variants ? "1" : "0",
  JSD_BUILD_DIR: buildDir,
  JSD_CUDA: "0",
  JSD_VULKAN: "0",
  JSD_METAL: "0",
};
const build = spawnSync(process.execPath, [join(root, "scripts", "build-native.mjs")], { stdio: "inherit", env });
if (build.status !== 0) process.exit(build.status ?? 1);

rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
const release = join(buildDir, "Release");
const addon = join(release, "jsd.node");
// node-gyp-build reads tags from the name: "node.napi.node" = any Node version with N-API.
copyFileSync(addon, join(target, "node.napi.node"));
// ggml's libraries and plugins, as the build left them beside the addon.
const ggmlFile = /^(lib)?ggml[\w.-]*\.(so|dylib|dll)$/;
for (const name of readdirSync(release)) if (ggmlFile.test(name)) copyFileSync(join(release, name), join(target, name));

if (process.platform === "linux") {
  // Ship the shared libraries that are not part of a standard Linux system (sentencepiece).
  const system = /^(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux.*|linux-vdso)\.so/;
  const ldd = execFileSync("ldd", [addon], { encoding: "utf8" });
  for (const line of ldd.split("\n")) {
    const m = /^\s*(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?\s*$/.exec(line);
    if (!m || system.test(m[1]) || ggmlFile.test(m[1])) continue;
    if (m[2] === "not found") {
      console.error(`prebuild: ${basename(addon)} needs ${m[1]}, which is not installed here`);
      process.exit(1);
    }
    copyFileSync(m[2], join(target, m[1]));
  }
}
let total = 0;
for (const name of readdirSync(target).sort()) {
  const size = statSync(join(target, name)).size;
  total += size;
  console.error(`prebuild: ${name} ${size.toLocaleString("en-US")} B`);
}
console.error(`prebuild: ${target}: ${(total / 2 ** 20).toFixed(2)} MiB in all; needs ${process.platform === "linux" ? "glibc and libstdc++ only" : "the system runtime only"}`);
