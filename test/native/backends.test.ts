// The backend table (native/backends.json) through lib/native/backends.ts: the names of plugin files and
// node-llama-cpp packages per platform, the "auto" rule, and the pin the build scripts share.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  AUTO_ORDER,
  autoBackend,
  backendOfPluginFile,
  backendOfRegistryName,
  BACKEND_NAMES,
  nativeBackendName,
  BACKENDS_JSON,
  GGML_RELEASE,
  GPU_BACKENDS,
  installableBackends,
  nlcPackageName,
  nlcPluginPath,
  parseBackendTable,
  pluginFileName,
  systemLibrary,
} from "../../lib/native/backends.js";
// @ts-expect-error: a plain .mjs script without type declarations
import { GGML_SOURCE } from "../../scripts/fetch-ggml.mjs";

const raw = JSON.parse(readFileSync(BACKENDS_JSON, "utf8")) as Record<string, unknown>;

describe("native/backends.json", () => {
  it("names each GPU backend's plugin file as ggml does on each platform", () => {
    expect(GPU_BACKENDS).toEqual(["cuda", "vulkan", "metal"]);
    expect(pluginFileName("cuda", "linux")).toBe("libggml-cuda.so");
    expect(pluginFileName("vulkan", "linux")).toBe("libggml-vulkan.so");
    expect(pluginFileName("metal", "darwin")).toBe("libggml-metal.so");
    expect(pluginFileName("cuda", "win32")).toBe("ggml-cuda.dll");
    expect(backendOfPluginFile("/x/libggml-vulkan.so", "linux")).toBe("vulkan");
    expect(backendOfPluginFile("C:\\x\\ggml-cuda.dll", "win32")).toBe("cuda");
    expect(backendOfPluginFile("/x/libggml-base.so", "linux")).toBeUndefined();
  });

  it("names node-llama-cpp's binary packages (win/mac, not win32/darwin) and where the plugin lies in them", () => {
    expect(nlcPackageName("vulkan", "linux", "x64")).toBe("@node-llama-cpp/linux-x64-vulkan");
    expect(nlcPackageName("cuda", "linux", "x64")).toBe("@node-llama-cpp/linux-x64-cuda");
    expect(nlcPackageName("cuda", "win32", "x64")).toBe("@node-llama-cpp/win-x64-cuda");
    expect(nlcPackageName("vulkan", "win32", "x64")).toBe("@node-llama-cpp/win-x64-vulkan");
    expect(nlcPackageName("metal", "darwin", "arm64")).toBe("@node-llama-cpp/mac-arm64-metal");
    expect(nlcPackageName("cuda", "linux", "arm64")).toBeUndefined();
    expect(nlcPackageName("metal", "linux", "x64")).toBeUndefined();
    expect(nlcPluginPath("vulkan", "linux", "x64")).toBe("bins/linux-x64-vulkan/libggml-vulkan.so");
    expect(nlcPluginPath("cuda", "win32", "x64")).toBe("bins/win-x64-cuda/ggml-cuda.dll");
    expect(installableBackends("linux", "x64")).toEqual(["cuda", "vulkan"]);
    expect(installableBackends("linux", "arm64")).toEqual([]);
  });

  it("says where each library a plugin needs comes from, and which ones only a GPU machine has", () => {
    expect(systemLibrary("libcudart.so.13", "linux")).toMatchObject({ backend: "cuda", absentIfMissing: false, from: expect.stringMatching(/CUDA 13 runtime.*toolkit/) });
    expect(systemLibrary("libcuda.so.1", "linux")).toMatchObject({ backend: "cuda", absentIfMissing: true, from: expect.stringMatching(/NVIDIA driver/) });
    expect(systemLibrary("libvulkan.so.1", "linux")).toMatchObject({ backend: "vulkan", from: expect.stringMatching(/libvulkan1.*mesa-vulkan-drivers/) });
    expect(systemLibrary("libcudart.so.13", "win32")).toBeUndefined();
  });

  it("keeps one auto rule: the first backend in the order with a (GPU-type) device, the CPU last", () => {
    expect(AUTO_ORDER).toEqual(["cuda", "metal", "vulkan", "cpu"]);
    const cpu = { backend: "cpu", type: "cpu" };
    expect(autoBackend([cpu])).toBe("cpu");
    expect(autoBackend([])).toBe("cpu");
    expect(autoBackend([cpu, { backend: "vulkan", type: "gpu" }])).toBe("vulkan");
    expect(autoBackend([cpu, { backend: "vulkan", type: "gpu" }, { backend: "cuda", type: "gpu" }])).toBe("cuda");
    expect(autoBackend([cpu, { backend: "vulkan", type: "igpu" }])).toBe("vulkan");
    // A device of CPU type under a GPU backend is never picked by "auto".
    expect(autoBackend([cpu, { backend: "vulkan", type: "cpu" }])).toBe("cpu");
    // ggml's registry calls Metal "MTL"; a device without a type counts.
    expect(autoBackend([cpu, { backend: "mtl" }])).toBe("metal");
    expect(backendOfRegistryName("MTL")).toBe("metal");
    expect(backendOfRegistryName("Vulkan")).toBe("vulkan");
    expect(backendOfRegistryName("ROCm")).toBe("rocm");
  });

  it("crosses the addon boundary under ggml's registry names and comes back under ours", () => {
    expect(nativeBackendName("metal")).toBe("mtl");
    expect(nativeBackendName("cuda")).toBe("cuda");
    for (const name of BACKEND_NAMES) expect(backendOfRegistryName(nativeBackendName(name))).toBe(name);
  });

  it("holds the ggml pin scripts/fetch-ggml.mjs builds from", () => {
    expect(GGML_RELEASE).toMatchObject({ package: "node-llama-cpp", version: "3.21.1", binaryScope: "@node-llama-cpp" });
    expect(GGML_SOURCE).toMatchObject({
      package: GGML_RELEASE.package,
      version: GGML_RELEASE.version,
      integrity: GGML_RELEASE.integrity,
      bundlePath: GGML_RELEASE.bundlePath,
    });
  });

  it("refuses a table with a typo, by name", () => {
    const edit = (change: (t: { backends: Record<string, unknown>[]; auto: { order: string[] } }) => void) => {
      const copy = structuredClone(raw) as { backends: Record<string, unknown>[]; auto: { order: string[] } };
      change(copy);
      return () => parseBackendTable(copy);
    };
    expect(() => parseBackendTable(raw)).not.toThrow();
    expect(edit((t) => (t.backends[1].name = "cudaa"))).toThrow(/backends\[1\]\.name must be one of/);
    expect(edit((t) => t.backends.pop())).toThrow(/backend metal is missing/);
    expect(edit((t) => delete t.backends[2].plugin)).toThrow(/needs plugin, buildFlag and cmakeOption/);
    expect(edit((t) => (t.auto.order = ["cpu", "cuda"]))).toThrow(/must end with cpu/);
    expect(edit((t) => (t.backends[1].systemLibraries = [{ file: "x" }]))).toThrow(/systemLibraries\[0\]/);
  });
});
