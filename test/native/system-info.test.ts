import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { listDevices, loadModel, systemInfo } from "../../lib/index.js";
import { nativeBinary } from "../../lib/native/addon.js";

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };

describe("systemInfo()", () => {
  it("describes the package, the ggml build and the machine", () => {
    const info = systemInfo();
    expect(info.version).toBe(pkg.version);
    expect(info.ggmlVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.ggmlCommit).toMatch(/^[0-9a-f]{40}$/);
    expect(info.ggmlBuild).toContain(info.ggmlCommit.slice(0, 10));
    expect(info.backends).toContain("CPU");
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(info.threads).toBeLessThanOrEqual(info.logicalCores);
    expect(Array.isArray(info.cpuFeatures)).toBe(true);
    if (process.arch === "x64") expect(info.cpuFeatures).toContain("sse4.2");
    expect(info.devices.find((d) => d.backend === "cpu")).toMatchObject({ index: 0, name: expect.any(String) });
    expect(["cpu", "cuda", "vulkan", "metal"]).toContain(info.autoBackend);
  });

  it("works from two worker threads at once (the addon is context-aware)", async () => {
    // Each worker loads the addon into its own context and calls systemInfo() there.
    const source = `
      const { parentPort } = require("node:worker_threads");
      const load = require("node-gyp-build");
      const addon = load(${JSON.stringify(new URL("../..", import.meta.url).pathname)});
      const info = addon.systemInfo();
      const sp = new addon.SentencePiece(require("node:fs").readFileSync(${JSON.stringify(
        new URL("../fixtures/tiny-jsd/tokenizer/spiece.model", import.meta.url).pathname,
      )}));
      parentPort.postMessage({ backends: info.backends, ids: Array.from(sp.encode("赤い丸").ids) });
    `;
    const run = () =>
      new Promise<{ backends: string[]; ids: number[] }>((resolve, reject) => {
        const worker = new Worker(source, { eval: true });
        worker.once("message", resolve);
        worker.once("error", reject);
        worker.once("exit", (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
      });
    const [a, b] = await Promise.all([run(), run()]);
    expect(a.backends).toContain("CPU");
    expect(b).toEqual(a);
    expect(systemInfo().backends).toEqual(a.backends);
  });
});

describe("backend selection", () => {
  it("lists the CPU device and runs the embedded model on the chosen backend", async () => {
    expect(listDevices().some((d) => d.backend === "cpu")).toBe(true);
    const model = await loadModel(undefined, { backend: "cpu", threads: 1 });
    expect(model.backend).toBe("cpu");
    const [image] = await model.generate({ prompt: "赤い丸", steps: 2, seed: 1 });
    expect(image.parameters.backend).toBe("cpu");
    await model.close();
  });

  it("refuses an absent backend instead of running on the CPU", async () => {
    const gpus = listDevices().filter((d) => d.backend !== "cpu").map((d) => d.backend);
    for (const backend of ["cuda", "vulkan", "metal"] as const) {
      if (gpus.includes(backend)) continue;
      await expect(loadModel(undefined, { backend })).rejects.toMatchObject({
        code: "JSD_INVALID_ARGUMENT",
        message: expect.stringMatching(new RegExp(`backend '${backend}' is not available`)),
      });
    }
    await expect(loadModel(undefined, { backend: "tpu" as never })).rejects.toThrow(RangeError);
    await expect(loadModel(undefined, { backend: "cpu", device: 5 })).rejects.toMatchObject({ code: "JSD_INVALID_ARGUMENT" });
  });
});

// A benchmark switch (native/runtime/backend_loader.cpp): ggml's AVX2 build of the CPU backend on a
// CPU that has more, for scripts/bench's "@ggml-avx2" rows.
describe.skipIf(process.platform !== "linux")("JSD_CPU_PLUGIN=<file>", () => {
  const systemInfoWith = (plugin: string) => {
    const script = `
      const { systemInfo } = await import(${JSON.stringify(new URL("../../dist/index.js", import.meta.url).href)});
      try {
        console.log(JSON.stringify({ features: systemInfo().ggmlCpuFeatures }));
      } catch (e) {
        console.log(JSON.stringify({ code: e.code, message: e.message }));
      }`;
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, JSD_CPU_PLUGIN: plugin } });
    return JSON.parse(run.stdout) as { features?: string[]; code?: string; message?: string };
  };

  it("loads that CPU plugin instead of the best one beside the addon", () => {
    const dir = dirname(nativeBinary().path);
    const plugin = readdirSync(dir).find((name) => /^libggml-cpu.*\.so$/.test(name))!;
    expect(systemInfoWith(join(dir, plugin)).features).toContain("sse3");
  });

  it("refuses a file it cannot load, by the variable's name", () => {
    expect(systemInfoWith("/no/such/libggml-cpu.so")).toMatchObject({ code: "JSD_NATIVE_UNAVAILABLE", message: expect.stringContaining("JSD_CPU_PLUGIN") });
  });
});
