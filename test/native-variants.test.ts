// Choosing between the CPU binary and GPU variant binaries (lib/native-variants.ts) and probing a
// GPU binary in a child process (lib/native-probe.ts). No GPU needed: GPU binaries are faked
// with random bytes or with probe functions that report hangs and crashes.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { binaryLines } from "../lib/cli/doctor.js";
import { linuxCpuFlags, prebuildBaselineProblem } from "../lib/cpu-baseline.js";
import { runCli } from "../lib/cli/program.js";
import { JsdError } from "../lib/errors.js";
import { defaultLoaderDeps, native, packageRoot, type NativeAddon } from "../lib/native.js";
import { probeBinary } from "../lib/native-probe.js";
import {
  chooseGpuBinary,
  gpuCandidates,
  gpuDisabled,
  loadNativeBinary,
  localBuildBinary,
  variantOfBackends,
  variantPackageBinary,
  variantPackageName,
  type BinaryCandidate,
  type LoaderDeps,
  type ProbeResult,
} from "../lib/native-variants.js";
import { systemInfo } from "../lib/system-info.js";

const require = createRequire(import.meta.url);

/** The real CPU addon node-gyp-build would load (build/Release or prebuilds/), if one is built. */
function realCpuBinary(): string | undefined {
  try {
    return (require("node-gyp-build") as { path(dir: string): string }).path(packageRoot);
  } catch {
    return undefined;
  }
}
const cpuBinary = realCpuBinary();
const noCpuBinary = cpuBinary === undefined;
// A GPU backend the CPU build certainly lacks on this platform.
const absentGpu = process.platform === "darwin" ? "cuda" : "metal";

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "jsd-variants-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A package root whose build-cuda/Release/jsd.node is random bytes: a GPU binary that cannot load. */
function rootWithBrokenCuda(): { root: string; gpu: string } {
  const root = tempDir();
  const gpu = localBuildBinary(root, "cuda");
  mkdirSync(dirname(gpu), { recursive: true });
  writeFileSync(gpu, randomBytes(4096));
  return { root, gpu };
}

function fakeAddon(backends: string[]): NativeAddon {
  return { systemInfo: () => ({ backends }) } as unknown as NativeAddon;
}

const FAKE_CPU = "/fake/build/Release/jsd.node";

/** Real layout, probe and warnings for `root`, but a fake CPU binary (none need be built) and an empty environment. */
function depsFor(root: string, overrides: Partial<LoaderDeps<NativeAddon>> = {}): LoaderDeps<NativeAddon> {
  const load = vi.fn((path: string) => {
    if (path === FAKE_CPU) return fakeAddon(["CPU"]);
    throw new Error(`${path}: cannot load`);
  });
  return { ...defaultLoaderDeps(root), env: {}, findCpuBinary: () => FAKE_CPU, load, ...overrides };
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe("GPU candidates", () => {
  it("uses the names and folders the build scripts write", () => {
    expect(variantPackageName("linux", "x64", "cuda")).toBe("@japanese-stable-diffusion/linux-x64-cuda");
    expect(localBuildBinary("/r", "vulkan")).toBe(join("/r", "build-vulkan", "Release", "jsd.node"));
    expect(variantPackageBinary("/p", "win32", "x64")).toBe(join("/p", "prebuilds", "win32-x64", "node.napi.node"));
  });

  it("lists the GPU binaries that exist: local builds first, then installed packages, CUDA before Vulkan before Metal", () => {
    const root = tempDir();
    const files = new Set([
      localBuildBinary(root, "vulkan"),
      localBuildBinary(root, "cuda"),
      variantPackageBinary("/pkgs/metal", "linux", "x64"),
      variantPackageBinary("/pkgs/cuda", "linux", "x64"),
      // The Vulkan package is installed but holds no binary for this platform: not a candidate.
    ]);
    const installed: Record<string, string> = {
      [variantPackageName("linux", "x64", "cuda")]: "/pkgs/cuda",
      [variantPackageName("linux", "x64", "vulkan")]: "/pkgs/vulkan",
      [variantPackageName("linux", "x64", "metal")]: "/pkgs/metal",
    };
    const list = gpuCandidates({ packageRoot: root, platform: "linux", arch: "x64", exists: (p) => files.has(p), findPackage: (n) => installed[n] });
    expect(list).toEqual([
      { variant: "cuda", path: localBuildBinary(root, "cuda"), source: "local build" },
      { variant: "vulkan", path: localBuildBinary(root, "vulkan"), source: "local build" },
      { variant: "cuda", path: variantPackageBinary("/pkgs/cuda", "linux", "x64"), source: "npm package" },
      { variant: "metal", path: variantPackageBinary("/pkgs/metal", "linux", "x64"), source: "npm package" },
    ]);
  });

  it("reads JSD_GPU and names a binary's variant from its compiled backends", () => {
    for (const off of ["0", "off", "FALSE", "no"]) expect(gpuDisabled({ JSD_GPU: off })).toBe(true);
    for (const on of [undefined, "", "1", "yes"]) expect(gpuDisabled({ JSD_GPU: on })).toBe(false);
    expect(variantOfBackends(["CPU"])).toBe("cpu");
    expect(variantOfBackends(["CUDA", "CPU"])).toBe("cuda");
    expect(variantOfBackends(["Vulkan", "CPU"])).toBe("vulkan");
    expect(variantOfBackends(["Metal", "BLAS", "CPU"])).toBe("metal");
  });
});

describe("choosing a GPU binary with fake probes", () => {
  const candidates: BinaryCandidate[] = [
    { variant: "cuda", path: "/a/build-cuda/Release/jsd.node", source: "local build" },
    { variant: "cuda", path: "/n/linux-x64-cuda/node.napi.node", source: "npm package" },
    { variant: "vulkan", path: "/n/linux-x64-vulkan/node.napi.node", source: "npm package" },
    { variant: "metal", path: "/n/linux-x64-metal/node.napi.node", source: "npm package" },
  ];
  const verdicts: Record<string, ProbeResult> = {
    [candidates[0].path]: { ok: false, reason: "its probe did not finish in 20 s" },
    [candidates[1].path]: { ok: false, reason: "its probe was killed by SIGABRT" },
    [candidates[2].path]: { ok: true },
    [candidates[3].path]: { ok: true },
  };

  it("skips a hanging and a crashing binary with one warning each and takes the next that works; later ones are never probed", () => {
    const probe = vi.fn((c: BinaryCandidate) => verdicts[c.path]);
    const load = vi.fn((path: string) => ({ path }));
    const warn = vi.fn();
    const { chosen, skipped } = chooseGpuBinary(candidates, probe, load, warn);
    expect(chosen?.binary).toEqual(candidates[2]);
    expect(chosen?.addon).toEqual({ path: candidates[2].path });
    expect(probe.mock.calls.map(([c]) => c.path)).toEqual(candidates.slice(0, 3).map((c) => c.path));
    expect(load.mock.calls).toEqual([[candidates[2].path]]);
    expect(skipped).toEqual([
      { ...candidates[0], reason: "its probe did not finish in 20 s" },
      { ...candidates[1], reason: "its probe was killed by SIGABRT" },
    ]);
    expect(warn).toHaveBeenCalledTimes(2);
    expect(warn.mock.calls[0][0]).toContain(candidates[0].path);
    expect(warn.mock.calls[0][0]).toContain("did not finish");
    expect(warn.mock.calls[1][0]).toContain(candidates[1].path);
    expect(warn.mock.calls[1][0]).toContain("SIGABRT");
  });

  it("skips a GPU that is merely absent (no device, no driver library) without a warning", () => {
    const warn = vi.fn();
    const absent: ProbeResult = { ok: false, reason: "it loads but finds no cuda device", absent: true };
    const { chosen, skipped } = chooseGpuBinary(candidates.slice(0, 3), (c) => (c === candidates[2] ? { ok: true } : absent), (path) => ({ path }), warn);
    expect(chosen?.binary).toEqual(candidates[2]);
    expect(skipped.map((s) => s.reason)).toEqual([absent.reason, absent.reason]);
    expect(warn).not.toHaveBeenCalled();
  });

  it.skipIf(process.platform === "win32")("reads a missing driver library as an absent GPU, not a broken binary", () => {
    const script = "console.error('Error: libcuda.so.1: cannot open shared object file: No such file or directory'); process.exit(1);";
    expect(probeBinary("/unused.node", "cuda", { script })).toEqual({
      ok: false,
      absent: true,
      reason: "its probe exited with code 1: Error: libcuda.so.1: cannot open shared object file: No such file or directory",
    });
  });

  it("skips a binary that passes its probe but fails to load here", () => {
    const load = vi.fn((path: string) => {
      if (path === candidates[2].path) throw new Error("undefined symbol: napi_foo\nmore");
      return { path };
    });
    const warn = vi.fn();
    const { chosen, skipped } = chooseGpuBinary(candidates.slice(2), () => ({ ok: true }), load, warn);
    expect(chosen?.binary).toEqual(candidates[3]);
    expect(skipped).toEqual([{ ...candidates[2], reason: "it passed the probe but failed to load in this process (undefined symbol: napi_foo)" }]);
    expect(warn).toHaveBeenCalledTimes(1);
  });

  it("falls back to the CPU binary when every GPU binary fails, and says so when that is missing too", () => {
    const root = tempDir();
    for (const v of ["cuda", "vulkan"] as const) {
      mkdirSync(dirname(localBuildBinary(root, v)), { recursive: true });
      writeFileSync(localBuildBinary(root, v), "");
    }
    const warn = vi.fn();
    const probe = vi.fn((): ProbeResult => ({ ok: false, reason: "no device" }));
    const choice = loadNativeBinary(depsFor(root, { probe, warn }));
    expect(choice.binary).toEqual({ variant: "cpu", path: FAKE_CPU, source: "node-gyp-build" });
    expect(choice.skipped.map((s) => s.variant)).toEqual(["cuda", "vulkan"]);
    expect(warn).toHaveBeenCalledTimes(2);

    const findCpuBinary = () => {
      throw new Error("No native build was found");
    };
    let error: unknown;
    try {
      loadNativeBinary(depsFor(root, { probe, warn, findCpuBinary }));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(JsdError);
    expect(error).toMatchObject({ code: "JSD_NATIVE_UNAVAILABLE" });
    expect((error as Error).message).toContain("No native build was found");
    expect((error as Error).message).toContain(`${localBuildBinary(root, "cuda")}: no device`);
  });
});

describe("probing in a child process", () => {
  it("fails a random-bytes .node file with the loader's error, and probes it once", () => {
    const { gpu } = rootWithBrokenCuda();
    const result = probeBinary(gpu, "cuda");
    expect(result.ok).toBe(false);
    const reason = result.ok ? "" : result.reason;
    expect(reason).toMatch(/^its probe exited with code [1-9]\d*: /);
    expect(reason).toContain(gpu);
    if (process.platform === "linux") expect(reason).toMatch(/invalid ELF header|file too short/);
    expect(probeBinary(gpu, "cuda")).toBe(result);
  });

  it("fails a probe that hangs, after its timeout", () => {
    const started = Date.now();
    const result = probeBinary("/unused.node", "cuda", { timeoutMs: 1000, script: "setInterval(() => {}, 1000);" });
    expect(result).toEqual({ ok: false, reason: "its probe did not finish in 1 s" });
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it.skipIf(process.platform === "win32")("fails a probe that crashes, naming the signal", () => {
    const result = probeBinary("/unused.node", "cuda", { script: "console.error('ggml_abort: CUDA error'); process.kill(process.pid, 'SIGABRT');" });
    expect(result).toEqual({ ok: false, reason: "its probe was killed by SIGABRT: ggml_abort: CUDA error" });
  });

  it("passes only a binary that reports a device of its own backend", () => {
    const report = (devices: string[]) => `console.log("noise"); console.log("JSD_PROBE " + JSON.stringify({ backends: ["CUDA", "CPU"], devices: ${JSON.stringify(devices)} }));`;
    expect(probeBinary("/unused.node", "cuda", { script: report(["cpu"]) })).toEqual({
      ok: false,
      absent: true,
      reason: "it loads but finds no cuda device (devices: cpu; compiled backends: CUDA, CPU)",
    });
    expect(probeBinary("/unused.node", "cuda", { script: report(["cuda", "cpu"]) })).toEqual({ ok: true });
    expect(probeBinary("/unused.node", "cuda", { script: "console.log('hello')" })).toEqual({ ok: false, reason: "its probe printed no result" });
  });

  // Needs the CPU addon from `npm run build` (build/Release) or `npm run prebuild` (prebuilds/);
  // where neither has been built yet there is no real binary to probe.
  it.skipIf(noCpuBinary)("passes the real CPU addon as a CPU binary and fails it as a GPU binary", () => {
    expect(probeBinary(cpuBinary!, "cpu")).toEqual({ ok: true });
    const asGpu = probeBinary(cpuBinary!, absentGpu);
    expect(asGpu.ok).toBe(false);
    expect(asGpu.ok ? "" : asGpu.reason).toMatch(new RegExp(`^it loads but finds no ${absentGpu} device \\(devices: cpu; compiled backends: .*CPU`));
  });
});

describe("loading with fallback", () => {
  it("skips a GPU binary that fails its real probe with one JSD_GPU_FALLBACK warning and takes the CPU binary", () => {
    const { root, gpu } = rootWithBrokenCuda();
    const emitWarning = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    const deps = depsFor(root);
    const choice = loadNativeBinary(deps);
    expect(choice.binary).toEqual({ variant: "cpu", path: FAKE_CPU, source: "node-gyp-build" });
    expect(choice.skipped).toHaveLength(1);
    expect(choice.skipped[0]).toMatchObject({ variant: "cuda", path: gpu, source: "local build", reason: expect.stringMatching(/^its probe exited with code/) });
    expect(emitWarning).toHaveBeenCalledTimes(1);
    expect(emitWarning).toHaveBeenCalledWith(expect.stringContaining(gpu), { code: "JSD_GPU_FALLBACK" });
    // The broken binary never reaches this process.
    expect(vi.mocked(deps.load).mock.calls).toEqual([[FAKE_CPU]]);
  });

  it("JSD_GPU=0 skips GPU binaries without probing them", () => {
    const { root } = rootWithBrokenCuda();
    const warn = vi.fn();
    const probe = vi.fn((): ProbeResult => ({ ok: false, reason: "no device" }));
    // Without JSD_GPU the CUDA build is a candidate...
    loadNativeBinary(depsFor(root, { probe, warn }));
    expect(probe).toHaveBeenCalledTimes(1);
    probe.mockClear();
    warn.mockClear();
    // ...with JSD_GPU=0 it is not looked at.
    const choice = loadNativeBinary(depsFor(root, { probe, warn, env: { JSD_GPU: "0" } }));
    expect(probe).not.toHaveBeenCalled();
    expect(warn).not.toHaveBeenCalled();
    expect(choice.binary.path).toBe(FAKE_CPU);
    expect(choice.skipped).toEqual([]);
  });

  it("JSD_BINARY is used as-is: a missing or broken file is a JSD_NATIVE_UNAVAILABLE error, never a fallback", () => {
    const { root, gpu } = rootWithBrokenCuda();
    const missing = join(root, "nothing-here", "jsd.node");
    for (const path of [missing, gpu]) {
      const probe = vi.fn((): ProbeResult => ({ ok: true }));
      const findCpuBinary = vi.fn(() => FAKE_CPU);
      const deps = { ...defaultLoaderDeps(root), env: { JSD_BINARY: path }, probe, findCpuBinary };
      let error: unknown;
      try {
        loadNativeBinary(deps);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(JsdError);
      expect(error).toMatchObject({ code: "JSD_NATIVE_UNAVAILABLE", message: expect.stringContaining(`JSD_BINARY=${path}`) });
      expect(probe).not.toHaveBeenCalled();
      expect(findCpuBinary).not.toHaveBeenCalled();
    }
  });

  it("JSD_BINARY that loads is used without a probe, and its variant comes from its compiled backends", () => {
    const { root } = rootWithBrokenCuda();
    const probe = vi.fn((): ProbeResult => ({ ok: true }));
    const choice = loadNativeBinary(depsFor(root, { env: { JSD_BINARY: "/opt/jsd/vulkan.node" }, probe, load: () => fakeAddon(["Vulkan", "CPU"]) }));
    expect(choice.binary).toEqual({ variant: "vulkan", path: "/opt/jsd/vulkan.node", source: "JSD_BINARY" });
    expect(probe).not.toHaveBeenCalled();
  });

  it("native() honours JSD_BINARY", () => {
    const missing = join(tempDir(), "jsd.node");
    vi.stubEnv("JSD_BINARY", missing);
    expect(() => native()).toThrow(expect.objectContaining({ code: "JSD_NATIVE_UNAVAILABLE", message: expect.stringContaining(missing) }));
  });
});

describe("reporting the binary in use", () => {
  it("jsd doctor lists the binary and each skipped one with its reason", () => {
    expect(
      binaryLines({
        variant: "cpu",
        path: "/p/build/Release/jsd.node",
        source: "node-gyp-build",
        skipped: [{ variant: "cuda", path: "/n/cuda/node.napi.node", source: "npm package", reason: "its probe exited with code 1: libcudart.so.12: cannot open" }],
      }),
    ).toEqual([
      "native binary: cpu (node-gyp-build) /p/build/Release/jsd.node",
      "skipped cuda binary (npm package) /n/cuda/node.napi.node: its probe exited with code 1: libcudart.so.12: cannot open",
    ]);
  });

  // Needs the built CPU addon (see above). Runs after the JSD_BINARY failure above, which cached nothing.
  it.skipIf(noCpuBinary)("systemInfo() and jsd doctor name the CPU binary node-gyp-build found", async () => {
    vi.stubEnv("JSD_GPU", "0");
    expect(systemInfo().binary).toEqual({ variant: "cpu", path: cpuBinary, source: "node-gyp-build", skipped: [] });
    let out = "";
    const io = { stdout: { write: (s: string) => (out += s) }, stderr: { write: () => true } };
    expect(await runCli(["node", "jsd", "doctor"], io)).toBe(0);
    expect(out).toContain(`native binary: cpu (node-gyp-build) ${cpuBinary}\n`);
    out = "";
    expect(await runCli(["node", "jsd", "doctor", "--json"], io)).toBe(0);
    expect(JSON.parse(out).binary).toMatchObject({ variant: "cpu", path: cpuBinary });
  });
});

describe("the prebuilt x64 binary's CPU baseline", () => {
  const prebuilt = "/pkg/prebuilds/linux-x64/node.napi.node";
  const v3 = new Set(["sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"]);

  it("refuses a prebuilt binary on a CPU without AVX2/FMA/F16C/BMI2 instead of letting it die of SIGILL", () => {
    const load = vi.fn(() => fakeAddon(["CPU"]));
    const old = new Set(["sse4_2", "avx"]);
    let error: unknown;
    try {
      loadNativeBinary(depsFor(tempDir(), { findCpuBinary: () => prebuilt, cpuFlags: () => old, load }));
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: "JSD_NATIVE_UNAVAILABLE", message: expect.stringMatching(/lacks AVX2, FMA, F16C, BMI2.*npm run build/) });
    expect(load).not.toHaveBeenCalled();
  });

  it("loads it on an x86-64-v3 CPU, and never checks a local build or another architecture", () => {
    const unread = () => {
      throw new Error("the CPU flags were read for a binary that is not a prebuild");
    };
    expect(prebuildBaselineProblem(prebuilt, "x64", () => v3)).toBeUndefined();
    expect(prebuildBaselineProblem("/pkg/build/Release/jsd.node", "x64", unread)).toBeUndefined();
    expect(prebuildBaselineProblem("/pkg/prebuilds/linux-arm64/node.napi.node", "arm64", unread)).toBeUndefined();
    expect(prebuildBaselineProblem(prebuilt, "x64", () => undefined)).toBeUndefined(); // flags unknown (not Linux)
    expect(prebuildBaselineProblem(prebuilt, "x64", () => new Set(["avx2", "fma", "f16c"]))).toMatch(/lacks BMI2/);
    const choice = loadNativeBinary(depsFor(tempDir(), { findCpuBinary: () => prebuilt, cpuFlags: () => v3, load: () => fakeAddon(["CPU"]) }));
    expect(choice.binary).toEqual({ variant: "cpu", path: prebuilt, source: "node-gyp-build" });
  });

  it.skipIf(process.platform !== "linux")("reads this machine's flags on Linux", () => {
    expect(linuxCpuFlags()?.size).toBeGreaterThan(0);
  });
});

describe("installed GPU packages of another version", () => {
  it("are skipped with a warning naming both versions, before any probe", () => {
    const binary = variantPackageBinary("/pkgs/cuda", "linux", "x64");
    const versions: Record<string, string> = { "/own": "0.2.0", "/pkgs/cuda": "0.1.0" };
    const probe = vi.fn((): ProbeResult => ({ ok: true }));
    const warn = vi.fn();
    const load = (p: string) => fakeAddon(p === binary ? ["CUDA", "CPU"] : ["CPU"]);
    // One installed CUDA package beside this one, at /own.
    const deps = (): LoaderDeps<NativeAddon> => ({
      ...depsFor("/own", { probe, warn, load }),
      packageRoot: "/own",
      platform: "linux",
      arch: "x64",
      exists: (p) => p === binary,
      findPackage: (name) => (name.endsWith("linux-x64-cuda") ? "/pkgs/cuda" : undefined),
      packageVersion: (dir) => versions[dir],
    });
    const stale = loadNativeBinary(deps());
    expect(probe).not.toHaveBeenCalled();
    expect(stale.binary.variant).toBe("cpu");
    expect(stale.skipped.map((s) => s.reason)).toEqual(["its package is version 0.1.0, not 0.2.0 like japanese-stable-diffusion; reinstall to update it"]);
    expect(warn).toHaveBeenCalledTimes(1);

    versions["/pkgs/cuda"] = "0.2.0"; // the same release: probed and used
    const same = loadNativeBinary(deps());
    expect(probe).toHaveBeenCalledTimes(1);
    expect(same.binary).toEqual({ variant: "cuda", path: binary, source: "npm package" });
  });
});
