// `jsd gpu install|list|remove` (lib/native/gpu-install.ts, lib/cli/gpu.ts) without the network: the
// node-llama-cpp package is a tarball made here with `tar` (random bytes for its plugin), and
// `npm pack` is a fake that copies it to --pack-destination and prints what npm would.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { GGML_RELEASE } from "../../lib/native/backends.js";
import { listingLines } from "../../lib/cli/gpu.js";
import { runCli } from "../../lib/cli/program.js";
import { JsdError } from "../../lib/errors.js";
import { installGpuPlugin, listFolders, listGpuPlugins, removeGpuPlugin, type InstallSystem } from "../../lib/native/gpu-install.js";
import { readJsonFile } from "../../lib/native/plugin-deps.js";
import { pluginCandidates, versionProblem, type PluginLayout } from "../../lib/native/plugins.js";
import { tempDirs } from "../helpers/temp-dirs.js";

const PINNED = GGML_RELEASE.version;
const VULKAN_PACKAGE = "@node-llama-cpp/linux-x64-vulkan";

const tempDir = tempDirs("jsd-gpu-install-");

interface FakePackage {
  tarball: string;
  plugin: Buffer;
}

/** A package tarball laid out like node-llama-cpp's: package.json, and bins/<suffix>/ with the plugin and a libggml-base.so. */
function fakePackage(options: { name?: string; version?: string; withPlugin?: boolean } = {}): FakePackage {
  const dir = tempDir();
  const bins = join(dir, "package", "bins", "linux-x64-vulkan");
  mkdirSync(bins, { recursive: true });
  writeFileSync(join(dir, "package", "package.json"), JSON.stringify({ name: options.name ?? VULKAN_PACKAGE, version: options.version ?? PINNED, exports: { ".": "./dist/index.js" } }));
  const plugin = randomBytes(64 * 1024);
  if (options.withPlugin !== false) writeFileSync(join(bins, "libggml-vulkan.so"), plugin);
  writeFileSync(join(bins, "libggml-base.so"), randomBytes(1024));
  const tarball = join(dir, "node-llama-cpp-linux-x64-vulkan.tgz");
  execFileSync("tar", ["-czf", tarball, "-C", dir, "package"]);
  return { tarball, plugin };
}

const sha = (algorithm: string, bytes: Buffer, encoding: "hex" | "base64") => createHash(algorithm).update(bytes).digest(encoding);
const linuxX64 = { platform: "linux", arch: "x64" };

/** A `run` that answers `npm pack` with the given tarball (and integrity) and runs everything else for real. */
function fakeNpm(tarball: string, integrity?: string): InstallSystem["run"] & { calls: string[][] } {
  const calls: string[][] = [];
  const run = async (command: string, args: string[]) => {
    calls.push([command, ...args]);
    if (command !== "npm") return execFileSync(command, args, { encoding: "utf8" });
    const destination = args[args.indexOf("--pack-destination") + 1];
    copyFileSync(tarball, join(destination, "node-llama-cpp-linux-x64-vulkan-3.21.1.tgz"));
    const bytes = readFileSync(tarball);
    return JSON.stringify([{ name: VULKAN_PACKAGE, version: PINNED, filename: "node-llama-cpp-linux-x64-vulkan-3.21.1.tgz", integrity: integrity ?? `sha512-${sha("sha512", bytes, "base64")}` }]);
  };
  return Object.assign(run, { calls });
}

async function failure(promise: Promise<unknown> | (() => unknown)): Promise<JsdError> {
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (error) {
    expect(error).toBeInstanceOf(JsdError);
    return error as JsdError;
  }
  throw new Error("expected a failure");
}

/** What the loader sees in a cache folder (real file system, linux-x64, no packages, no addon). */
function cacheLayout(cacheDir: string, env: Record<string, string> = {}): PluginLayout & { listDir(path: string): string[] } {
  return { env, ...linuxX64, cacheDir, exists: existsSync, findPackages: () => [], readJson: readJsonFile, listDir: listFolders };
}

describe("installing a GPU plugin", () => {
  it("from a local tarball keeps only the plugin file and its stamp in <cache>/<backend>/<version>/", async () => {
    const pkg = fakePackage();
    const cacheDir = tempDir();
    const installed = await installGpuPlugin("vulkan", { from: pkg.tarball, cacheDir, system: linuxX64 });
    const dir = join(cacheDir, "vulkan", PINNED);
    expect(installed.path).toBe(join(dir, "libggml-vulkan.so"));
    expect(readFileSync(installed.path).equals(pkg.plugin)).toBe(true);
    // Not their libggml-base.so: the process must have one ggml-base, ours.
    expect(readdirSync(dir).sort()).toEqual(["libggml-vulkan.so", "plugin.json"]);
    expect(installed.stamp).toEqual({
      package: VULKAN_PACKAGE,
      version: PINNED,
      file: "libggml-vulkan.so",
      sha256: sha("sha256", pkg.plugin, "hex"),
      size: pkg.plugin.length,
      installedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      from: pkg.tarball,
    });
    expect(JSON.parse(readFileSync(join(dir, "plugin.json"), "utf8"))).toEqual(installed.stamp);

    // The loader finds it as a plugin cache candidate of the right release.
    const layout = cacheLayout(cacheDir);
    const candidates = pluginCandidates(layout);
    expect(candidates).toEqual([{ backend: "vulkan", path: installed.path, source: "plugin cache" }]);
    expect(versionProblem(candidates[0], layout)).toBeUndefined();

    // Installing again replaces it in place.
    const again = await installGpuPlugin("vulkan", { from: fakePackage().tarball, cacheDir, system: linuxX64 });
    expect(again.stamp.sha256).not.toBe(installed.stamp.sha256);
    expect(readdirSync(dir).sort()).toEqual(["libggml-vulkan.so", "plugin.json"]);
  });

  it("downloads with npm pack, checking the tarball against the registry's integrity", async () => {
    const pkg = fakePackage();
    const cacheDir = tempDir();
    const run = fakeNpm(pkg.tarball);
    const installed = await installGpuPlugin("vulkan", { cacheDir, system: { ...linuxX64, run } });
    expect(run.calls[0]).toEqual(["npm", "pack", `${VULKAN_PACKAGE}@${PINNED}`, "--json", "--ignore-scripts", "--pack-destination", expect.any(String)]);
    expect(installed.stamp.from).toBe("npm");
    expect(readFileSync(installed.path).equals(pkg.plugin)).toBe(true);

    const tampered = await failure(installGpuPlugin("vulkan", { cacheDir: tempDir(), system: { ...linuxX64, run: fakeNpm(pkg.tarball, "sha512-AAAA") } }));
    expect(tampered).toMatchObject({ code: "JSD_BAD_FILE", message: expect.stringMatching(/does not match the registry's integrity \(sha512-AAAA\)/) });

    const offline = vi.fn(async () => {
      throw new Error("`npm pack` failed: npm error code ENOTFOUND");
    });
    const down = await failure(installGpuPlugin("vulkan", { cacheDir, system: { ...linuxX64, run: offline } }));
    expect(down).toMatchObject({ code: "JSD_DOWNLOAD_FAILED", message: expect.stringMatching(/could not download @node-llama-cpp\/linux-x64-vulkan@3\.21\.1 .*ENOTFOUND.*--from <file\.tgz>/) });
  });

  it("refuses a package of another version, naming both, and leaves the cache alone", async () => {
    const cacheDir = tempDir();
    const error = await failure(installGpuPlugin("vulkan", { from: fakePackage({ version: "3.22.1" }).tarball, cacheDir, system: linuxX64 }));
    expect(error.code).toBe("JSD_BAD_FILE");
    expect(error.message).toContain("version 3.22.1");
    expect(error.message).toContain(`needs version ${PINNED}`);
    expect(readdirSync(cacheDir)).toEqual([]);
  });

  it("refuses another package, a package without the plugin, and a file that is no package", async () => {
    const system = linuxX64;
    const cacheDir = tempDir();
    expect(await failure(installGpuPlugin("vulkan", { from: fakePackage({ name: "@node-llama-cpp/linux-x64-cuda" }).tarball, cacheDir, system }))).toMatchObject({
      code: "JSD_BAD_FILE",
      message: expect.stringContaining(`holds @node-llama-cpp/linux-x64-cuda, not ${VULKAN_PACKAGE}`),
    });
    expect(await failure(installGpuPlugin("vulkan", { from: fakePackage({ withPlugin: false }).tarball, cacheDir, system }))).toMatchObject({
      code: "JSD_BAD_FILE",
      message: expect.stringContaining("holds no bins/linux-x64-vulkan/libggml-vulkan.so"),
    });
    const junk = join(tempDir(), "junk.tgz");
    writeFileSync(junk, randomBytes(512));
    expect(await failure(installGpuPlugin("vulkan", { from: junk, cacheDir, system }))).toMatchObject({ code: "JSD_BAD_FILE", message: expect.stringContaining("not an npm package tarball") });
    expect(await failure(installGpuPlugin("vulkan", { from: join(tempDir(), "missing.tgz"), cacheDir, system }))).toMatchObject({ code: "JSD_NOT_FOUND" });
    // Nothing is written before the package checks out.
    expect(readdirSync(cacheDir)).toEqual([]);
  });

  it("says when node-llama-cpp has no plugin for the platform, and what a GPU backend is", async () => {
    const cuda = await failure(installGpuPlugin("cuda", { system: { platform: "linux", arch: "arm64" } }));
    expect(cuda).toMatchObject({ code: "JSD_PLUGIN_UNAVAILABLE", message: expect.stringMatching(/no cuda plugin for linux-arm64 \(only for linux-x64, win32-x64\).*JSD_CUDA=1 npm run build:native/) });
    expect(await failure(installGpuPlugin("metal", { system: linuxX64 }))).toMatchObject({ code: "JSD_PLUGIN_UNAVAILABLE" });
    for (const name of ["cpu", "rocm"]) {
      expect(await failure(installGpuPlugin(name, { system: linuxX64 }))).toMatchObject({ code: "JSD_INVALID_ARGUMENT", message: expect.stringContaining("cuda, vulkan, metal") });
    }
  });
});

describe("listing and removing", () => {
  it("lists what is found with its release, keeps other releases' folders apart, and removes this release's", async () => {
    const cacheDir = tempDir();
    await installGpuPlugin("vulkan", { from: fakePackage().tarball, cacheDir, system: linuxX64 });
    mkdirSync(join(cacheDir, "vulkan", "3.20.0"), { recursive: true });

    const listing = listGpuPlugins(cacheLayout(cacheDir, { JSD_GPU: "0" }));
    expect(listing).toMatchObject({ cacheDir, release: PINNED, disabled: true, installable: ["cuda", "vulkan"] });
    expect(listing.found).toEqual([{ backend: "vulkan", source: "plugin cache", path: join(cacheDir, "vulkan", PINNED, "libggml-vulkan.so"), version: PINNED, problem: undefined }]);
    expect(listing.otherReleases).toEqual([{ backend: "vulkan", version: "3.20.0", path: join(cacheDir, "vulkan", "3.20.0") }]);
    const lines = listingLines(listing);
    expect(lines).toContain("JSD_GPU=0 is set: none of them is loaded");
    expect(lines).toContain(`vulkan (plugin cache ${PINNED}) ${listing.found[0].path}: ok`);

    expect(removeGpuPlugin("vulkan", { cacheDir })).toEqual([join(cacheDir, "vulkan", PINNED)]);
    expect(readdirSync(join(cacheDir, "vulkan"))).toEqual(["3.20.0"]);
    expect(removeGpuPlugin("vulkan", { cacheDir })).toEqual([]);
    expect(removeGpuPlugin("vulkan", { cacheDir, allReleases: true })).toEqual([join(cacheDir, "vulkan")]);
    expect(readdirSync(cacheDir)).toEqual([]);
  });
});

describe("jsd gpu", () => {
  function io() {
    const out = { stdout: "", stderr: "" };
    return { out, io: { stdout: { write: (s: string) => (out.stdout += s) }, stderr: { write: (s: string) => (out.stderr += s) } } };
  }

  // The CLI installs for the platform it runs on; the fake package is linux-x64's.
  it.skipIf(process.platform !== "linux" || process.arch !== "x64")("installs from a tarball, lists and removes", async () => {
    const pkg = fakePackage();
    const cacheDir = tempDir();
    const a = io();
    expect(await runCli(["node", "jsd", "gpu", "install", "vulkan", "--from", pkg.tarball, "--cache-dir", cacheDir], a.io)).toBe(0);
    expect(a.out.stdout).toMatch(new RegExp(`^installed libggml-vulkan.so \\(64.0 KiB, sha256 [0-9a-f]{64}\\) from ${VULKAN_PACKAGE}@${PINNED} into ${join(cacheDir, "vulkan", PINNED)}`));
    expect(a.out.stdout).toMatch(/needs the Vulkan loader/);

    const b = io();
    expect(await runCli(["node", "jsd", "gpu", "list", "--json", "--cache-dir", cacheDir], b.io)).toBe(0);
    const listing = JSON.parse(b.out.stdout) as ReturnType<typeof listGpuPlugins>;
    expect(listing.found.find((f) => f.source === "plugin cache")).toMatchObject({ backend: "vulkan", version: PINNED });

    const c = io();
    expect(await runCli(["node", "jsd", "gpu", "remove", "vulkan", "--cache-dir", cacheDir], c.io)).toBe(0);
    expect(c.out.stdout).toBe(`removed ${join(cacheDir, "vulkan", PINNED)}\n`);
  });

  it("fails with the error's code on one line", async () => {
    const d = io();
    expect(await runCli(["node", "jsd", "gpu", "install", "opencl", "--cache-dir", tempDir()], d.io)).toBe(1);
    expect(d.out.stderr).toBe("jsd: unknown GPU backend 'opencl' (one of cuda, vulkan, metal) (JSD_INVALID_ARGUMENT)\n");
  });
});
