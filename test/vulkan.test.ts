// Vulkan, run for real on this GPU-less machine: Mesa's lavapipe is a Vulkan 1.3 device on the
// CPU, and the Vulkan backend is node-llama-cpp's prebuilt ggml plugin of our ggml release,
// installed the way users install it (`jsd gpu install vulkan`, into a test cache folder).
// ggml-vulkan skips CPU-type devices unless GGML_VK_VISIBLE_DEVICES admits them.
//
// Tolerances (max abs error against the f32 PyTorch reference, f16 tiny model): measured on
// lavapipe (Mesa 22.3 and 25.0 alike) 1.1e-2 text encoder, 1.8e-2 UNet, 3.0e-2 VAE decode, 3.3e-2 VAE encode, about three
// times the CPU's f16 errors (ggml-vulkan rounds activations to f16 for f16 products, the CPU
// keeps them f32); the tolerances below allow about 2x that.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GGML_RELEASE, nlcPackageName, nlcPluginPath } from "../lib/backends.js";
import { installGpuPlugin } from "../lib/gpu-install.js";
import { loadModel, type Model } from "../lib/model.js";
import { packageRoot } from "../lib/package-root.js";
import { readCases, type CaseFile } from "../lib/parity/cases.js";
import { runCases } from "../lib/parity/run.js";
import { listDevices } from "../lib/system-info.js";
import { lavapipe } from "./helpers/lavapipe.js";
import { referenceCases, tinyModel } from "./helpers/models.js";

const VULKAN_F16_TOLERANCES = { text_encoder: 3e-2, unet: 4e-2, vae_decode: 6e-2, vae_encode: 6e-2 };

const pluginCache = join(packageRoot, ".cache", "test-plugins");

/** Paths of the ggml libraries mapped into this process. */
function mappedGgml(): string[] {
  const paths = readFileSync("/proc/self/maps", "utf8")
    .split("\n")
    .map((line) => line.split(/\s+/).slice(5).join(" "))
    .filter((path) => /libggml/.test(path));
  return [...new Set(paths)];
}

describe.skipIf(!lavapipe)("Vulkan on lavapipe", () => {
  let cases: CaseFile[];
  let packagePlugin = "";
  let f16Path = "";

  beforeAll(async () => {
    process.env.GGML_VK_VISIBLE_DEVICES = "0";
    // node-llama-cpp's package, downloaded once per clean checkout: its plugin goes into the test
    // cache (the child processes below use that, as `jsd gpu install` users do), and the whole
    // package is unpacked too, so that this process loads the plugin from a folder that also
    // holds node-llama-cpp's own libggml-base.so: the case where a second copy could load.
    mkdirSync(pluginCache, { recursive: true });
    const spec = `${nlcPackageName("vulkan", "linux", "x64")}@${GGML_RELEASE.version}`;
    const tarball = join(pluginCache, `${spec.replace(/^@/, "").replace(/[/@]/g, "-")}.tgz`);
    if (!existsSync(tarball)) {
      const packed = JSON.parse(execFileSync("npm", ["pack", spec, "--json", "--pack-destination", pluginCache], { encoding: "utf8" })) as Array<{ filename: string }>;
      renameSync(join(pluginCache, packed[0].filename), tarball);
    }
    await installGpuPlugin("vulkan", { cacheDir: pluginCache, from: tarball });
    const unpacked = join(pluginCache, "unpacked");
    mkdirSync(unpacked, { recursive: true });
    execFileSync("tar", ["-xzf", tarball, "-C", unpacked]);
    packagePlugin = join(unpacked, "package", nlcPluginPath("vulkan", "linux", "x64")!);
    expect(existsSync(join(dirname(packagePlugin), "libggml-base.so"))).toBe(true);
    process.env.JSD_PLUGINS = packagePlugin;
    f16Path = await tinyModel("f16");
    cases = (await readCases(referenceCases)).filter((c) => ["tokenizer", "text_encoder", "unet", "vae_decode", "vae_encode"].includes(c.kind));
  }, 300_000);

  it("lists the lavapipe device beside the CPU", () => {
    const devices = listDevices();
    expect(devices.map((d) => d.backend)).toEqual(expect.arrayContaining(["cpu", "vulkan"]));
    const vulkan = devices.find((d) => d.backend === "vulkan")!;
    expect(vulkan.description).toMatch(/llvmpipe/);
    expect(vulkan.totalBytes).toBeGreaterThan(0);
  });

  it("maps exactly one libggml-base, ours, with the CPU and Vulkan plugins loaded", () => {
    listDevices(); // loads the backends
    const mapped = mappedGgml();
    // The plugin came from node-llama-cpp's folder, beside its own libggml-base.so ...
    expect(mapped).toContain(realpathSync(packagePlugin));
    const base = mapped.filter((p) => /libggml-base\.so$/.test(p));
    expect(base).toHaveLength(1);
    expect(base[0].startsWith(packageRoot)).toBe(true);
    expect(mapped.some((p) => /libggml-cpu[\w-]*\.so$/.test(p))).toBe(true);
    expect(mapped.some((p) => /libggml-vulkan\.so$/.test(p))).toBe(true);
  });

  it("passes every tiny-model reference case at the Vulkan f16 tolerances, in one model", async () => {
    // One model for every case: the graphs change shape from case to case, as they do for a user.
    const model = await loadModel(await tinyModel("f16"), { backend: "vulkan" });
    try {
      const results = await runCases(model, cases, VULKAN_F16_TOLERANCES);
      expect(results.filter((r) => r.status !== "PASS").map((r) => `${r.name}: ${r.stats?.maxAbs} > ${r.tolerance}`)).toEqual([]);
      expect(results.length).toBe(53);
      // The tolerances are exercised: Vulkan's f16 arithmetic is not the reference's f32.
      const unet = results.filter((r) => r.kind === "unet");
      expect(Math.max(...unet.map((r) => r.stats!.maxAbs))).toBeGreaterThan(1e-3);
    } finally {
      await model.close();
    }
  }, 600_000);

  it("runs the parity command on Vulkan (npm run parity -- --backend vulkan)", () => {
    const tolerances = Object.entries(VULKAN_F16_TOLERANCES).flatMap(([kind, value]) => ["--tolerance", `${kind}=${value}`]);
    const run = spawnSync(
      process.execPath,
      [join(packageRoot, "dist", "parity", "cli.js"), "--model", f16Path, "--cases", join(referenceCases, "unet"), "--backend", "vulkan", ...tolerances],
      // The child finds the plugin where `jsd gpu install` put it.
      { encoding: "utf8", timeout: 300_000, env: { ...process.env, GGML_VK_VISIBLE_DEVICES: "0", JSD_PLUGIN_DIR: pluginCache, JSD_PLUGINS: "" } },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^6 passed, 0 failed$/m);
  }, 300_000);

  describe("generate()", () => {
    let gpu: Model;
    let cpu: Model;
    beforeAll(async () => {
      const path = await tinyModel("f16");
      gpu = await loadModel(path, { backend: "vulkan" });
      cpu = await loadModel(path, { backend: "cpu" });
    });
    afterAll(async () => {
      await gpu?.close();
      await cpu?.close();
    });

    it("runs every network on the Vulkan device and reports its device bytes", async () => {
      expect(gpu.backend).toBe("vulkan");
      await gpu.generate({ prompt: "白い背景に赤い丸", seed: 1, steps: 2 });
      for (const m of gpu.memory()) {
        expect(m.backend, m.name).toBe("vulkan");
        expect(m.deviceBytes, m.name).toBe(m.weightBytes);
        expect(m.mappedBytes + m.packedBytes, m.name).toBe(0);
      }
    });

    it("draws the CPU's picture within f16 rounding", async () => {
      const options = { prompt: "青い背景に黄色い星", seed: 7, steps: 4 };
      const [a] = await gpu.generate(options);
      const [b] = await cpu.generate(options);
      const pa = a.rgba;
      const pb = b.rgba;
      expect(pa.length).toBe(pb.length);
      let maxDiff = 0;
      let sum = 0;
      for (let i = 0; i < pa.length; i++) {
        const d = Math.abs(pa[i] - pb[i]);
        maxDiff = Math.max(maxDiff, d);
        sum += d;
      }
      // 8-bit pixels: the mean stays within a level or two, no pixel strays far.
      expect(sum / pa.length).toBeLessThan(2);
      expect(maxDiff).toBeLessThan(40);
    });

    it("stops at the next step when aborted, and runs again afterwards", async () => {
      const controller = new AbortController();
      const run = gpu.generate({
        prompt: "夜空に月",
        seed: 3,
        steps: 50,
        signal: controller.signal,
        onProgress: ({ step }) => {
          if (step === 2) controller.abort();
        },
      });
      await expect(run).rejects.toMatchObject({ name: "AbortError" });
      const [image] = await gpu.generate({ prompt: "夜空に月", seed: 3, steps: 2 });
      expect(image.width).toBe(64);
    });
  });

  it("gives back the device memory of closed models (lavapipe's device memory is this process's)", async () => {
    const path = await tinyModel("f32");
    const cycle = async () => {
      const model = await loadModel(path, { backend: "vulkan" });
      await model.generate({ prompt: "日の丸", seed: 1, steps: 1 });
      await model.close();
    };
    await cycle();
    const settled = process.memoryUsage().rss;
    for (let i = 0; i < 8; i++) await cycle();
    const growth = process.memoryUsage().rss - settled;
    console.log(`vulkan: RSS growth over 8 load/generate/close cycles ${(growth / 2 ** 20).toFixed(1)} MiB`);
    // Each cycle puts a 16 MiB f32 model and its compute buffers on the device: keeping them after
    // close() would add over 128 MiB in eight cycles. The allocator's own swings are about 25 MiB
    // (the same loop on the CPU backend moves RSS by 7 to 20 MiB).
    expect(growth).toBeLessThan(64 * 2 ** 20);
  }, 300_000);
});
