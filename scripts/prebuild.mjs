#!/usr/bin/env node
// npm run prebuild: a portable CPU binary for this platform in prebuilds/<platform>-<arch>/,
// where node-gyp-build finds it before any local build. ggml's CPU kernels are built for a
// baseline instead of this machine (x86-64: AVX2/FMA/F16C, i.e. x86-64-v3; arm64: NEON), and
// the shared libraries the addon needs beyond the C/C++ runtime (sentencepiece) are copied
// beside it, found through an $ORIGIN rpath, so users need no compiler and no libsentencepiece.
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const buildDir = join(root, "build-prebuild");
const target = join(root, "prebuilds", `${process.platform}-${process.arch}`);

const env = { ...process.env, JSD_NATIVE: "0", JSD_PREBUILD: "1", JSD_BUILD_DIR: buildDir };
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
  const ldd = execFileSync("ldd", [addon], { encoding: "utf8" });
  for (const line of ldd.split("\n")) {
    const m = /^\s*(\S+) => (\S+)/.exec(line);
    if (!m || system.test(m[1])) continue;
    copyFileSync(m[2], join(target, m[1]));
  }
}
console.error(`prebuild: ${target}: ${readdirSync(target).join(", ")}`);
console.error(`prebuild: ${basename(addon)} needs ${process.platform === "linux" ? "glibc and libstdc++ only" : "the system runtime only"}`);
