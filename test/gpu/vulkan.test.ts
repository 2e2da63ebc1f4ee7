// Vulkan, run for real on this GPU-less machine: Mesa's lavapipe is a Vulkan 1.3 device on the
// CPU, and the Vulkan backend is node-llama-cpp's prebuilt ggml plugin of our ggml release,
// installed the way users install it (`jsd gpu install vulkan`, into a test cache folder).
// ggml-vulkan skips CPU-type devices unless GGML_VK_VISIBLE_DEVICES admits them.
//
// Tolerances (max abs error against the f32 PyTorch reference, f16 tiny model): measured on
// lavapipe (Mesa 22.3 and 25.0 alike) 1.1e-2 text encoder, 1.8e-2 UNet, 3.0e-2 VAE decode, 3.3e-2 VAE encode, about three
// times the CPU's f16 errors (ggml-vulkan rounds activations to f16 for f16 products, the CPU
// keeps them f32); the tolerances below allow about 2x that.
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GGML_RELEASE, nlcPackageName, nlcPluginPath } from "../../lib/native/backends.js";
import { installGpuPlugin } from "../../lib/native/gpu-install.js";
import { loadModel, planModel, type Model, type Placement } from "../../lib/model.js";
import { packageRoot } from "../../lib/package-root.js";
import { readCases, type CaseFile } from "../../lib/parity/cases.js";
import { runCases } from "../../lib/parity/run.js";
import { runSafetyCase } from "../../lib/parity/safety.js";
import { listDevices } from "../../lib/system-info.js";
import { lavapipe } from "../helpers/lavapipe.js";
import { referenceCases, safetyCheckerCases, tinyModel, tinySafetyModel } from "../helpers/models.js";
import { embedWith, loadSafetyCase, maxEmbedError, SAFETY_CASE_NAMES } from "../helpers/safety-cases.js";

const VULKAN_F16_TOLERANCES = { text_encoder: 3e-2, unet: 4e-2, vae_decode: 6e-2, vae_encode: 6e-2 };
// The safety checker's image_embeds (values up to about 2): ggml-vulkan's matrix products round
// their operands to f16 in shared memory wherever the device has f16 arithmetic, f32 weights too:
// measured 1.1e-3 for the f32 file and 4.3e-3 for the f16 file (CPU: 1.0e-6 and 1.1e-3). With
// GGML_VK_DISABLE_F16=1 the f32 file is exact to 8e-7: the graph is the CPU's.
const VULKAN_SAFETY_TOLERANCES = { f32: 2.5e-3, f16: 1e-2 };

const pluginCache = join(packageRoot, ".cache", "test-plugins");

// lavapipe compiles each of ggml-vulkan's shaders with LLVM the first time a graph uses it, and
// keeps the result in Mesa's shader cache (~/.cache/mesa_shader_cache*). Warm, this whole file
// takes about 45 s; on a fresh machine the first tests to meet a shader pay its compilation, which
// on some x86 hosts takes minutes per matrix-product shader (measured on a 2-core Xeon: the parity
// command's six UNet cases in 754 s on a cold cache, 3.3 s on a warm one). So the tests that run
// graphs first get room for that; the limits are there to end a hang, not to time the work.
const FIRST_COMPILE_MS = 1_800_000;

// Children run asynchronously: a synchronous wait of minutes would block this worker's event loop
// and time out vitest's own messages to it.
const execFileAsync = promisify(execFile);

/** Runs node with args; its exit status, stdout and stderr (a failure to start or a timeout throws). */
async function runNode(args: string[], env: NodeJS.ProcessEnv, timeout: number): Promise<{ status: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, args, { encoding: "utf8", timeout, maxBuffer: 64 << 20, env });
    return { status: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: unknown; killed?: boolean; stdout?: string; stderr?: string };
    if (typeof e.code !== "number" || e.killed) throw error;
    return { status: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

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
  }, FIRST_COMPILE_MS);

  it("runs the parity command on Vulkan (npm run parity -- --backend vulkan)", async () => {
    const tolerances = Object.entries(VULKAN_F16_TOLERANCES).flatMap(([kind, value]) => ["--tolerance", `${kind}=${value}`]);
    const run = await runNode(
      [join(packageRoot, "dist", "parity", "cli.js"), "--model", f16Path, "--cases", join(referenceCases, "unet"), "--backend", "vulkan", ...tolerances],
      // The child finds the plugin where `jsd gpu install` put it.
      { ...process.env, GGML_VK_VISIBLE_DEVICES: "0", JSD_PLUGIN_DIR: pluginCache, JSD_PLUGINS: "" },
      FIRST_COMPILE_MS - 60_000,
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^6 passed, 0 failed$/m);
  }, FIRST_COMPILE_MS);

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
  }, FIRST_COMPILE_MS);

  describe("the safety checker", () => {
    it.each(["f32", "f16"] as const)("embeds the reference cases' images on the device from the %s file", async (type) => {
      const cases = await Promise.all(SAFETY_CASE_NAMES.map(loadSafetyCase));
      const model = await loadModel(await tinySafetyModel(type), { backend: "vulkan" });
      try {
        expect(model.memory().map((m) => [m.name, m.backend])).toContainEqual(["safety_checker", "vulkan"]);
        const error = await maxEmbedError(cases, embedWith(model));
        expect(error).toBeLessThanOrEqual(VULKAN_SAFETY_TOLERANCES[type]);
        expect(error).toBeGreaterThan(1e-5); // f16 arithmetic, really exercised
      } finally {
        await model.close();
      }
    }, FIRST_COMPILE_MS);

    // The decisions: a score moves by at most the cosines' error, so a decision can only differ from
    // the reference's where that error reaches the case's margin (the distance of its closest score
    // to a rounding boundary, min_decision_margin in the case's metadata). Compared where it does not.
    it.each(["f32", "f16"] as const)("decides as the reference wherever the cosines' error stays under the case's margin (%s file)", async (type) => {
      const model = await loadModel(await tinySafetyModel(type), { backend: "vulkan" });
      try {
        let compared = 0;
        for (const c of await readCases(safetyCheckerCases)) {
          const lines = await runSafetyCase(model.safetyChecker, c);
          const cosError = lines.find((l) => l.name.endsWith(":cos_dist"))!.stats.maxAbs;
          if (cosError >= Number(c.metadata.min_decision_margin)) continue;
          compared++;
          for (const stage of [":decisions", ":checked_images"]) expect(lines.find((l) => l.name.endsWith(stage)), `${c.name}${stage}`).toMatchObject({ pass: true });
        }
        expect(compared).toBeGreaterThan(0);
      } finally {
        await model.close();
      }
    }, 300_000);

    it("matches the f32 reference within 1e-4 with ggml-vulkan's f16 arithmetic off (GGML_VK_DISABLE_F16, a child process)", async () => {
      const cases = await Promise.all(SAFETY_CASE_NAMES.map(loadSafetyCase));
      const dist = (path: string) => JSON.stringify(join(packageRoot, "dist", path));
      const script = `
        const { loadModel } = await import(${dist("model.js")});
        const { readCases } = await import(${dist("parity/cases.js")});
        const { toFloat32 } = await import(${dist("formats/safetensors.js")});
        const model = await loadModel(process.argv[1], { backend: "vulkan" });
        const embeds = {};
        for (const c of await readCases(process.argv[2])) {
          const pixels = c.tensors.get("pixel_values");
          embeds[c.name] = Array.from(await model.embedImages(toFloat32(pixels), pixels.shape[0]));
        }
        console.log(JSON.stringify(embeds));
        await model.close();`;
      // GGML_VK_DISABLE_F16 selects other shaders (f32 arithmetic): compiled on first use too.
      const run = await runNode(
        ["--input-type=module", "-e", script, await tinySafetyModel("f32"), safetyCheckerCases],
        { ...process.env, GGML_VK_VISIBLE_DEVICES: "0", GGML_VK_DISABLE_F16: "1", JSD_PLUGIN_DIR: pluginCache, JSD_PLUGINS: "" },
        FIRST_COMPILE_MS - 60_000,
      );
      expect(run.status, run.stderr).toBe(0);
      const embeds = JSON.parse(run.stdout) as Record<string, number[]>;
      expect(await maxEmbedError(cases, async (c) => embeds[c.name] ?? [])).toBeLessThanOrEqual(1e-4);
    }, FIRST_COMPILE_MS);

    it("is the first network to move to the CPU where the device is too small", async () => {
      const path = await tinySafetyModel("f32");
      const full = await planModel(path, { backend: "vulkan" });
      expect(full.networks.map((n) => [n.name, n.onCpu])).toEqual([
        ["text_encoder", false],
        ["unet", false],
        ["vae", false],
        ["safety_checker", false],
      ]);
      const tight = await planModel(path, { backend: "vulkan", deviceMemoryLimit: full.deviceBytes - 1 });
      expect(tight.networks.map((n) => n.onCpu)).toEqual([false, false, false, true]);
    }, 300_000);
  });

  describe("placement", () => {
    let path = "";
    let full: Placement;
    beforeAll(async () => {
      path = await tinyModel("f32");
      full = await planModel(path, { backend: "vulkan" });
    });

    it("puts every network on the device when it fits, and measures what each needs there", async () => {
      expect(full.gpu).toBe(true);
      expect(full.networks.map((n) => [n.name, n.onCpu])).toEqual([
        ["text_encoder", false],
        ["unet", false],
        ["vae", false],
      ]);
      const [te, unet, vae] = full.networks;
      expect(full.deviceBytes).toBe(te.weightBytes + unet.weightBytes + vae.weightBytes + te.computeBytes + Math.max(unet.computeBytes, vae.computeBytes));
      // The loaded model places as planned, and its compute buffers are the sizes measured.
      const model = await loadModel(path, { backend: "vulkan" });
      try {
        // (The device's free memory, the budget, moves with the machine's: lavapipe's is RAM.)
        expect({ ...model.placement(), deviceBudget: 0 }).toEqual({ ...full, deviceBudget: 0 });
        const seen = new Map<string, number>();
        await model.generate({
          prompt: "赤い丸",
          seed: 1,
          steps: 2,
          onProgress: () => {
            for (const m of model.memory()) seen.set(m.name, Math.max(seen.get(m.name) ?? 0, m.computeBytes));
          },
        });
        expect(seen.get("unet")).toBe(unet.computeBytes);
        expect(seen.get("text_encoder")).toBe(te.computeBytes);
        // The plan counts whole buffers (tensor alignment included); memory() the tensors' bytes.
        for (const m of model.memory()) {
          const planned = full.networks.find((n) => n.name === m.name)!.weightBytes;
          expect(planned, m.name).toBeGreaterThanOrEqual(m.deviceBytes);
          expect(planned - m.deviceBytes, m.name).toBeLessThan(m.deviceBytes / 100);
        }
      } finally {
        await model.close();
      }
    });

    it("moves the VAE, then the text encoder, to the CPU where the device is too small", async () => {
      const [te, unet, vae] = full.networks;
      const withoutVae = te.weightBytes + unet.weightBytes + te.computeBytes + unet.computeBytes;
      const placed = await planModel(path, { backend: "vulkan", deviceMemoryLimit: withoutVae });
      expect(placed.networks.map((n) => n.onCpu)).toEqual([false, false, true]);
      expect(placed.networks[2].reason).toMatch(/do not hold it beside the UNet/);
      const unetOnly = await planModel(path, { backend: "vulkan", deviceMemoryLimit: unet.weightBytes + unet.computeBytes });
      expect(unetOnly.networks.map((n) => n.onCpu)).toEqual([true, false, true]);
      expect(vae.weightBytes).toBeGreaterThan(0);
      // Loaded that way, the networks run where planned and draw the CPU's picture.
      const model = await loadModel(path, { backend: "vulkan", deviceMemoryLimit: unet.weightBytes + unet.computeBytes });
      const cpu = await loadModel(path, { backend: "cpu" });
      try {
        expect(model.memory().map((m) => [m.name, m.backend])).toEqual([
          ["text_encoder", "cpu"],
          ["unet", "vulkan"],
          ["vae", "cpu"],
        ]);
        const options = { prompt: "赤い丸", steps: 4, seed: 3 };
        const [a] = await cpu.generate(options);
        const [b] = await model.generate(options);
        let max = 0;
        for (let i = 0; i < a.rgba.length; i++) max = Math.max(max, Math.abs(a.rgba[i] - b.rgba[i]));
        expect(max).toBeLessThanOrEqual(4); // 4/255: the pipeline tolerance
      } finally {
        await model.close();
        await cpu.close();
      }
    });

    it("refuses a UNet that does not fit with JSD_OOM naming the sizes, or runs on the CPU for backend auto", async () => {
      const limit = full.networks[1].weightBytes; // not even room for its compute buffer
      await expect(loadModel(path, { backend: "vulkan", deviceMemoryLimit: limit })).rejects.toMatchObject({
        code: "JSD_OOM",
        message: expect.stringMatching(/unet \d+ MiB of weights \+ \d+ MiB of compute buffer .* against \d+ MiB available/),
      });
      const auto = await planModel(path, { backend: "auto", deviceMemoryLimit: limit });
      expect(auto.gpu).toBe(false);
      expect(auto.networks[1].reason).toMatch(/on the CPU: the UNet needs/);
      // A larger planned image needs a larger UNet compute buffer.
      const big = await planModel(path, { backend: "vulkan", plannedSize: { width: 256, height: 256 } });
      expect(big.networks[1].computeBytes).toBeGreaterThan(4 * full.networks[1].computeBytes);
      expect(big.networks[1].weightBytes).toBe(full.networks[1].weightBytes);
    });

    it("keeps textEncoderOnCpu / vaeOnCpu as asked", async () => {
      const plan = await planModel(path, { backend: "vulkan", textEncoderOnCpu: true, vaeOnCpu: true });
      expect(plan.networks.map((n) => [n.name, n.onCpu, n.reason])).toEqual([
        ["text_encoder", true, "on the CPU, as asked"],
        ["unet", false, expect.stringMatching(/^on Vulkan0/)],
        ["vae", true, "on the CPU, as asked"],
      ]);
    });
  });
});
