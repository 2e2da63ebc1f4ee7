// Choosing GPU backend plugins (lib/native/plugins.ts) and test-loading one in a child process
// (lib/native/probe.ts). No GPU and no built addon needed: the file system, packages and probes
// are fakes, and the child's hangs, crashes and reports are simulated with the probe's `script`.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, realpathSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { GGML_RELEASE, nlcPackageName, nlcPluginPath } from "../../lib/native/backends.js";
import { pluginLines } from "../../lib/cli/doctor.js";
import { defaultPluginDeps, findInstalledPackages } from "../../lib/native/plugin-deps.js";
import {
  choosePlugins,
  explicitPlugins,
  gpuDisabled,
  pluginCandidates,
  pluginReport,
  selectPlugins,
  versionProblem,
  type CandidateVerdict,
  type PluginCandidate,
  type PluginDeps,
  type PluginLayout,
} from "../../lib/native/plugins.js";
import { missingLibraries, probePlugin, readProbe, type ProbeResult } from "../../lib/native/probe.js";
import { packageRoot } from "../../lib/package-root.js";
import { pluginCacheDir } from "../../lib/native/plugin-cache.js";
import { tempDirs } from "../helpers/temp-dirs.js";

const PINNED = GGML_RELEASE.version;
const ADDON = "/app/node_modules/japanese-stable-diffusion/build/Release/jsd.node";
const CACHE = "/home/u/.cache/japanese-stable-diffusion/plugins";
const NLC_CUDA = "/app/node_modules/@node-llama-cpp/linux-x64-cuda";
const NLC_VULKAN = "/app/node_modules/@node-llama-cpp/linux-x64-vulkan";

const path = {
  localCuda: "/app/node_modules/japanese-stable-diffusion/build/Release/libggml-cuda.so",
  npmCuda: join(NLC_CUDA, nlcPluginPath("cuda", "linux", "x64")!),
  npmVulkan: join(NLC_VULKAN, nlcPluginPath("vulkan", "linux", "x64")!),
  cacheCuda: join(CACHE, "cuda", PINNED, "libggml-cuda.so"),
  cacheVulkan: join(CACHE, "vulkan", PINNED, "libggml-vulkan.so"),
};

const stamp = (version: string, file: string) => ({ package: "p", version, file, sha256: "00", size: 1, installedAt: "2026-01-01T00:00:00.000Z", from: "npm" });

/** A linux-x64 machine with the given files, installed packages and JSON files. */
function fakeLayout(files: string[], options: { env?: Record<string, string>; versions?: Record<string, string>; json?: Record<string, unknown> } = {}): PluginLayout {
  const installed: Record<string, string> = { [nlcPackageName("cuda", "linux", "x64")!]: NLC_CUDA, [nlcPackageName("vulkan", "linux", "x64")!]: NLC_VULKAN };
  const json: Record<string, unknown> = {
    [join(NLC_CUDA, "package.json")]: { version: options.versions?.cuda ?? PINNED },
    [join(NLC_VULKAN, "package.json")]: { version: options.versions?.vulkan ?? PINNED },
    [join(CACHE, "cuda", PINNED, "plugin.json")]: stamp(PINNED, "libggml-cuda.so"),
    [join(CACHE, "vulkan", PINNED, "plugin.json")]: stamp(PINNED, "libggml-vulkan.so"),
    ...options.json,
  };
  return {
    env: options.env ?? {},
    platform: "linux",
    arch: "x64",
    addonPath: ADDON,
    cacheDir: CACHE,
    exists: (p) => files.includes(p),
    findPackages: (name) => (installed[name] && files.some((f) => f.startsWith(installed[name])) ? [installed[name]] : []),
    readJson: (p) => json[p],
  };
}

function fakeDeps(layout: PluginLayout, probe: (c: PluginCandidate) => ProbeResult, warn = vi.fn()): PluginDeps & { warn: ReturnType<typeof vi.fn> } {
  return { ...layout, probe, warn };
}

const tempDir = tempDirs("jsd-plugins-");
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe("plugin candidates", () => {
  it("lists the plugins that exist by backend (CUDA, then Vulkan), each backend's local build first, then npm package, then the cache", () => {
    const layout = fakeLayout(Object.values(path));
    expect(pluginCandidates(layout)).toEqual([
      { backend: "cuda", path: path.localCuda, source: "local build" },
      { backend: "cuda", path: path.npmCuda, source: "npm package" },
      { backend: "cuda", path: path.cacheCuda, source: "plugin cache" },
      { backend: "vulkan", path: path.npmVulkan, source: "npm package" },
      { backend: "vulkan", path: path.cacheVulkan, source: "plugin cache" },
    ]);
    // Only what exists; no addon known: no local build.
    expect(pluginCandidates({ ...fakeLayout([path.cacheVulkan]), addonPath: undefined })).toEqual([{ backend: "vulkan", path: path.cacheVulkan, source: "plugin cache" }]);
  });

  it("JSD_GPU=0 lists nothing; JSD_PLUGINS replaces the search with its files, in order", () => {
    for (const off of ["0", "off", "FALSE", "no"]) expect(gpuDisabled({ JSD_GPU: off })).toBe(true);
    for (const on of [undefined, "", "1", "yes"]) expect(gpuDisabled({ JSD_GPU: on })).toBe(false);
    expect(pluginCandidates(fakeLayout(Object.values(path), { env: { JSD_GPU: "0" } }))).toEqual([]);
    expect(pluginCandidates(fakeLayout(Object.values(path), { env: { JSD_GPU: "0", JSD_PLUGINS: "/x/libggml-cuda.so" } }))).toEqual([]);

    const env = { JSD_PLUGINS: "/opt/a/libggml-vulkan.so::/opt/b/libggml-foo.so" };
    expect(pluginCandidates(fakeLayout(Object.values(path), { env }))).toEqual([
      { backend: "vulkan", path: "/opt/a/libggml-vulkan.so", source: "JSD_PLUGINS" },
      { backend: "foo", path: "/opt/b/libggml-foo.so", source: "JSD_PLUGINS" },
    ]);
    expect(explicitPlugins({ JSD_PLUGINS: "C:\\p\\ggml-cuda.dll;D:\\q\\ggml-vulkan.dll" }, "win32")).toHaveLength(2);
    expect(explicitPlugins({ JSD_PLUGINS: "rel/libggml-cuda.so" }, "linux")).toEqual([resolve("rel/libggml-cuda.so")]);
  });

  it("refuses an npm package or a cache folder of another ggml release, naming both versions; never a local build", () => {
    const layout = fakeLayout(Object.values(path), {
      versions: { cuda: "3.20.0" },
      json: { [join(CACHE, "vulkan", PINNED, "plugin.json")]: stamp("3.19.1", "libggml-vulkan.so"), [join(CACHE, "cuda", PINNED, "plugin.json")]: undefined },
    });
    const [local, npmCuda, cacheCuda, npmVulkan, cacheVulkan] = pluginCandidates(layout);
    expect(versionProblem(local, layout)).toBeUndefined();
    expect(versionProblem(npmCuda, layout)).toMatch(new RegExp(`version 3\\.20\\.0.*node-llama-cpp@${PINNED}.*install version ${PINNED}`));
    expect(versionProblem(npmVulkan, layout)).toBeUndefined();
    expect(versionProblem(cacheCuda, layout)).toMatch(/plugin\.json is missing.*jsd gpu install cuda/);
    expect(versionProblem(cacheVulkan, layout)).toMatch(new RegExp(`version 3\\.19\\.1 .*not ${PINNED}`));
  });
});

describe("choosing plugins", () => {
  const cuda1: PluginCandidate = { backend: "cuda", path: "/1/libggml-cuda.so", source: "local build" };
  const cuda2: PluginCandidate = { backend: "cuda", path: "/2/libggml-cuda.so", source: "npm package" };
  const cuda3: PluginCandidate = { backend: "cuda", path: "/3/libggml-cuda.so", source: "plugin cache" };
  const cuda4: PluginCandidate = { backend: "cuda", path: "/4/libggml-cuda.so", source: "plugin cache" };
  const vulkan: PluginCandidate = { backend: "vulkan", path: "/5/libggml-vulkan.so", source: "plugin cache" };

  it("skips a hanging and a crashing plugin with one warning each, keeps the next that works, and probes no later one of that backend", () => {
    const verdicts: Record<string, ProbeResult> = {
      [cuda1.path]: { ok: false, reason: "its probe did not finish in 20 s" },
      [cuda2.path]: { ok: false, reason: "its probe was killed by SIGABRT" },
      [cuda3.path]: { ok: true },
      [cuda4.path]: { ok: true },
      [vulkan.path]: { ok: true },
    };
    const probe = vi.fn((c: PluginCandidate) => verdicts[c.path]);
    const warn = vi.fn();
    const choice = choosePlugins([cuda1, cuda2, cuda3, cuda4, vulkan], probe, warn);
    expect(choice.plugins).toEqual([cuda3.path, vulkan.path]);
    expect(choice.chosen).toEqual([cuda3, vulkan]);
    expect(probe.mock.calls.map(([c]) => c.path)).toEqual([cuda1.path, cuda2.path, cuda3.path, vulkan.path]);
    expect(choice.skipped).toEqual([
      { ...cuda1, reason: "its probe did not finish in 20 s", absent: false },
      { ...cuda2, reason: "its probe was killed by SIGABRT", absent: false },
      { ...cuda4, reason: `the cuda plugin from the plugin cache (${cuda3.path}) is used instead`, absent: false },
    ]);
    expect(warn).toHaveBeenCalledTimes(2);
    expect(warn.mock.calls[0][0]).toContain(cuda1.path);
    expect(warn.mock.calls[0][0]).toContain("did not finish");
    expect(warn.mock.calls[1][0]).toContain("SIGABRT");
    expect(warn.mock.calls[1][0]).toContain("JSD_GPU=0");
  });

  it("passes over an absent GPU without a warning, unless the user named the file in JSD_PLUGINS", () => {
    const absent: ProbeResult = { ok: false, reason: "it loads but finds no cuda device (devices: cpu)", absent: true };
    const warn = vi.fn();
    const choice = choosePlugins([cuda1, cuda3], () => absent, warn);
    expect(choice.plugins).toEqual([]);
    expect(choice.skipped.map((s) => s.absent)).toEqual([true, true]);
    expect(warn).not.toHaveBeenCalled();
    choosePlugins([{ ...cuda1, source: "JSD_PLUGINS" }], () => absent, warn);
    expect(warn).toHaveBeenCalledTimes(1);
  });

  it("checks versions before probing: an npm package of another release is passed over quietly (node-llama-cpp's own, most likely), a stale cache folder with a warning", () => {
    const layout = fakeLayout(Object.values(path), { versions: { cuda: "3.22.1" }, json: { [join(CACHE, "vulkan", PINNED, "plugin.json")]: stamp("3.20.0", "libggml-vulkan.so") } });
    const probe = vi.fn((): ProbeResult => ({ ok: false, reason: "no device", absent: true }));
    const deps = fakeDeps({ ...layout, addonPath: "/elsewhere/jsd.node" }, probe);
    const choice = selectPlugins(deps);
    expect(probe.mock.calls.map(([c]) => c.path)).toEqual([path.cacheCuda, path.npmVulkan]);
    expect(choice.skipped.find((s) => s.path === path.npmCuda)?.reason).toMatch(/version 3\.22\.1/);
    expect(choice.skipped.find((s) => s.path === path.cacheVulkan)?.reason).toMatch(/version 3\.20\.0/);
    expect(deps.warn).toHaveBeenCalledTimes(1);
    expect(deps.warn.mock.calls[0][0]).toContain(path.cacheVulkan);
  });

  it("names a JSD_PLUGINS file that does not exist, without probing it", () => {
    const probe = vi.fn((): ProbeResult => ({ ok: true }));
    const deps = fakeDeps(fakeLayout([], { env: { JSD_PLUGINS: "/nope/libggml-cuda.so" } }), probe);
    const choice = selectPlugins(deps);
    expect(choice.skipped).toEqual([{ backend: "cuda", path: "/nope/libggml-cuda.so", source: "JSD_PLUGINS", reason: "there is no such file", absent: false }]);
    expect(probe).not.toHaveBeenCalled();
    expect(deps.warn).toHaveBeenCalledTimes(1);
  });

  it("JSD_GPU=0 probes nothing and warns about nothing", () => {
    const probe = vi.fn((): ProbeResult => ({ ok: true }));
    const deps = fakeDeps(fakeLayout(Object.values(path), { env: { JSD_GPU: "0" } }), probe);
    expect(selectPlugins(deps)).toEqual({ plugins: [], chosen: [], skipped: [] });
    expect(probe).not.toHaveBeenCalled();
    expect(deps.warn).not.toHaveBeenCalled();
  });

  it("reports a plugin that passed its probe but did not load in this process", () => {
    const choice = choosePlugins([cuda1, vulkan], (): CandidateVerdict => ({ ok: true }), vi.fn());
    const warn = vi.fn();
    const report = pluginReport(choice, [{ path: cuda1.path, loaded: true, backend: "cuda" }, { path: vulkan.path, loaded: false, error: "undefined symbol: ggml_foo" }], warn);
    expect(report.loaded).toEqual([cuda1]);
    expect(report.skipped).toEqual([{ ...vulkan, reason: "it passed its probe but did not load in this process (undefined symbol: ggml_foo)", absent: false }]);
    expect(warn).toHaveBeenCalledTimes(1);
  });
});

describe("missing libraries", () => {
  it("reads the library a loader could not find from Linux's and macOS's messages", () => {
    const linux = "load_backend: failed to load /c/libggml-cuda.so: libcudart.so.13: cannot open shared object file: No such file or directory";
    expect(missingLibraries(linux)).toEqual(["libcudart.so.13"]);
    expect(missingLibraries("dlopen(/p/libggml-metal.so, 0x0006): Library not loaded: @rpath/libfoo.1.dylib\n  Referenced from: /p/libggml-metal.so")).toEqual(["libfoo.1.dylib"]);
    expect(missingLibraries("LoadLibrary failed: The specified module could not be found.")).toEqual([]);
    expect(missingLibraries("invalid ELF header")).toEqual([]);
  });

  const report = (load: object, devices: string[] = ["cpu"]) => ({
    status: 0,
    signal: null,
    error: undefined,
    stdout: `noise\nJSD_PROBE ${JSON.stringify({ load, devices })}\n`,
    stderr: "",
  });

  it("says which library is missing and where to get it; a missing runtime is worth a warning, a missing driver is an absent GPU", () => {
    const runtime = readProbe(report({ path: "/c/libggml-cuda.so", loaded: false, error: "failed to load /c/libggml-cuda.so: libcudart.so.13: cannot open shared object file: No such file or directory" }), "cuda", 20_000, "linux");
    expect(runtime).toEqual({
      ok: false,
      absent: false,
      missing: ["libcudart.so.13"],
      reason: "it needs a library that is not installed or not on the library path: libcudart.so.13 is missing: it comes with NVIDIA's CUDA 13 runtime (cudart), e.g. the CUDA 13 toolkit",
    });
    const driver = readProbe(report({ path: "/c/libggml-cuda.so", loaded: false, error: "libcuda.so.1: cannot open shared object file: No such file or directory" }), "cuda", 20_000, "linux");
    expect(driver).toMatchObject({ ok: false, absent: true, missing: ["libcuda.so.1"], reason: expect.stringContaining("the NVIDIA driver") });
    const loader = readProbe(report({ path: "/v/libggml-vulkan.so", loaded: false, error: "libvulkan.so.1: cannot open shared object file" }), "vulkan", 20_000, "linux");
    expect(loader).toMatchObject({ absent: true, reason: expect.stringContaining("libvulkan1") });
    const windows = readProbe(report({ path: "C:\\c\\ggml-cuda.dll", loaded: false, error: "LoadLibrary: The specified module could not be found." }), "cuda", 20_000, "win32");
    expect(windows).toMatchObject({ ok: false, missing: [], reason: expect.stringMatching(/a library it needs is missing .*CUDA 13 runtime/) });
  });

  it("passes a plugin only when it registers its own backend and that backend has a device", () => {
    expect(readProbe(report({ path: "/v", loaded: true, backend: "vulkan" }, ["cpu", "vulkan"]), "vulkan", 1000)).toEqual({ ok: true });
    expect(readProbe(report({ path: "/m", loaded: true, backend: "mtl" }, ["cpu", "mtl"]), "metal", 1000)).toEqual({ ok: true });
    expect(readProbe(report({ path: "/v", loaded: true, backend: "vulkan" }), "vulkan", 1000)).toEqual({
      ok: false,
      absent: true,
      reason: expect.stringMatching(/^it loads but finds no vulkan device \(devices: cpu\); it needs the Vulkan loader and a Vulkan driver/),
    });
    expect(readProbe(report({ path: "/v", loaded: true, backend: "vulkan" }, ["vulkan"]), "cuda", 1000)).toEqual({ ok: false, reason: "it registers the vulkan backend, not cuda" });
    expect(readProbe(report({ path: "/v", loaded: false, error: "incompatible API version" }), "cuda", 1000)).toEqual({ ok: false, reason: "it does not load: incompatible API version" });
  });
});

describe("probing in a child process", () => {
  const target = { backend: "cuda", path: "/unused/libggml-cuda.so" };

  it("fails a probe that hangs, after its timeout", () => {
    const started = Date.now();
    const result = probePlugin("/unused.node", target, { timeoutMs: 1000, script: "setInterval(() => {}, 1000);" });
    expect(result).toEqual({ ok: false, reason: "its probe did not finish in 1 s" });
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it.skipIf(process.platform === "win32")("fails a probe that crashes, naming the signal", () => {
    const result = probePlugin("/unused.node", target, { script: "console.error('ggml_abort: CUDA error'); process.kill(process.pid, 'SIGABRT');" });
    expect(result).toEqual({ ok: false, reason: "its probe was killed by SIGABRT: ggml_abort: CUDA error" });
  });

  it("hands the child the addon's and the plugin's paths, and reads its marked report; each plugin is probed once", () => {
    const script = `console.log("JSD_PROBE " + JSON.stringify({ load: { path: process.argv[2], loaded: true, backend: "cuda" }, devices: [process.argv[1] === "/a/jsd.node" ? "cuda" : "cpu"] }));`;
    const first = probePlugin("/a/jsd.node", target, { script });
    expect(first).toEqual({ ok: true });
    expect(probePlugin("/a/jsd.node", target, { script })).toBe(first);
    expect(probePlugin("/b/jsd.node", target, { script })).toMatchObject({ ok: false, absent: true });
    expect(probePlugin("/a/jsd.node", target, { script: "console.log('hello')" })).toEqual({ ok: false, reason: "its probe printed no result" });
  });

  it("reads a missing library on the child's stderr too (the addon's own dlopen)", () => {
    const script = "console.error('Error: libcuda.so.1: cannot open shared object file: No such file or directory'); process.exit(1);";
    expect(probePlugin("/unused.node", { ...target, path: "/other/libggml-cuda.so" }, { script, platform: "linux" })).toMatchObject({ ok: false, absent: true, missing: ["libcuda.so.1"] });
  });

  // Needs the addon `npm run build` makes (build/Release/jsd.node with its CPU plugin beside it).
  const builtAddon = join(packageRoot, "build", "Release", "jsd.node");
  it.skipIf(!existsSync(builtAddon))("fails a random-bytes plugin with the loader's error, using the real addon", () => {
    const dir = tempDir();
    const plugin = join(dir, "libggml-cuda.so");
    writeFileSync(plugin, randomBytes(4096));
    const result = probePlugin(builtAddon, { backend: "cuda", path: plugin });
    expect(result.ok).toBe(false);
    expect(result.ok ? "" : result.reason).toMatch(/^it does not load: /);
    if (process.platform === "linux") expect(result.ok ? "" : result.reason).toMatch(/invalid ELF header|file too short/);
    const none = probePlugin(builtAddon, { backend: "cuda", path: join(dir, "none", "libggml-cuda.so") });
    expect(none).toEqual({ ok: false, reason: "it does not load: no such file" });
  });
});

describe("the real dependencies", () => {
  it("find an installed package even when its exports map hides package.json, from the package root and from the app", () => {
    const app = realpathSync(tempDir());
    const pkg = join(app, "node_modules", "@node-llama-cpp", "linux-x64-vulkan");
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: "@node-llama-cpp/linux-x64-vulkan", version: PINNED, exports: { ".": "./dist/index.js" } }));
    const ours = join(app, "node_modules", "japanese-stable-diffusion");
    mkdirSync(ours, { recursive: true });
    expect(findInstalledPackages("@node-llama-cpp/linux-x64-vulkan", [ours, app])).toEqual([pkg]);
    expect(findInstalledPackages("@node-llama-cpp/linux-x64-cuda", [ours, app])).toEqual([]);
  });

  it("put the plugin cache in JSD_PLUGIN_DIR, else the user's cache folder", () => {
    expect(pluginCacheDir({ JSD_PLUGIN_DIR: "/p" }, "linux", "/home/u")).toBe("/p");
    expect(pluginCacheDir({ XDG_CACHE_HOME: "/xdg" }, "linux", "/home/u")).toBe(join("/xdg", "japanese-stable-diffusion", "plugins"));
    expect(pluginCacheDir({}, "darwin", "/Users/u")).toBe(join("/Users/u", ".cache", "japanese-stable-diffusion", "plugins"));
    expect(pluginCacheDir({ LOCALAPPDATA: "C:\\Users\\u\\AppData\\Local" }, "win32", "C:\\Users\\u")).toBe(join("C:\\Users\\u\\AppData\\Local", "japanese-stable-diffusion", "plugins"));
    vi.stubEnv("JSD_PLUGIN_DIR", "/somewhere/plugins");
    const deps = defaultPluginDeps(packageRoot, undefined);
    expect(deps.cacheDir).toBe("/somewhere/plugins");
    expect(deps.probe({ backend: "cuda", path: "/x", source: "plugin cache" })).toMatchObject({ ok: false });
  });
});

describe("jsd doctor's plugin lines", () => {
  const linux = { platform: "linux", arch: "x64", env: {} };

  it("lists the plugins in use and each one passed over with its reason", () => {
    expect(
      pluginLines(
        {
          loaded: [{ backend: "vulkan", path: "/c/vulkan/libggml-vulkan.so", source: "plugin cache" }],
          skipped: [{ backend: "cuda", path: "/c/cuda/libggml-cuda.so", source: "plugin cache", absent: false, reason: "it needs a library that is not installed or not on the library path: libcudart.so.13 is missing: it comes with NVIDIA's CUDA 13 runtime (cudart), e.g. the CUDA 13 toolkit" }],
        },
        linux,
      ),
    ).toEqual([
      "GPU plugin: vulkan (plugin cache) /c/vulkan/libggml-vulkan.so",
      "skipped cuda plugin (plugin cache) /c/cuda/libggml-cuda.so: it needs a library that is not installed or not on the library path: libcudart.so.13 is missing: it comes with NVIDIA's CUDA 13 runtime (cudart), e.g. the CUDA 13 toolkit",
    ]);
  });

  it("says how to get a plugin when none was found, and that JSD_GPU=0 turns them off", () => {
    expect(pluginLines({ loaded: [], skipped: [] }, linux)).toEqual(["GPU plugins: none loaded", "to add one: npx jsd gpu install <cuda|vulkan> (docs/gpu.md)"]);
    expect(pluginLines({ loaded: [], skipped: [] }, { ...linux, arch: "arm64" })[1]).toMatch(/publishes no GPU plugin for linux-arm64/);
    expect(pluginLines({ loaded: [], skipped: [] }, { ...linux, env: { JSD_GPU: "0" } })).toEqual(["GPU plugins: off (JSD_GPU=0)"]);
  });
});
