// `jsd doctor`: what this installation has, and what to do when the native part is missing.
import type { Command } from "commander";
import { existsSync } from "node:fs";
import { isJsdError } from "../errors.js";
import { DEFAULT_MODEL_PATH } from "../model.js";
import { installableBackends } from "../native/backends.js";
import { gpuDisabled, type PluginReport } from "../native/plugins.js";
import { systemInfo, version } from "../system-info.js";
import type { CliIo } from "./io.js";

const INSTALL_HINTS: Record<string, string> = {
  linux: "Debian/Ubuntu: sudo apt-get install cmake g++ pkg-config libsentencepiece-dev, then npm run build",
  darwin: "macOS: xcode-select --install; brew install cmake sentencepiece pkg-config, then npm run build",
  win32: "Windows: install Visual Studio Build Tools (C++), CMake and vcpkg (vcpkg install sentencepiece), then npm run build",
};

/** Where pluginLines() runs: the platform decides what can be installed, the environment whether plugins are on. */
export interface PluginContext {
  platform: string;
  arch: string;
  env: Record<string, string | undefined>;
}

/**
 * The GPU plugins in use, then each one passed over with why (a missing library named with where
 * to get it: the probe's reason says so), then what to do when there are none.
 */
export function pluginLines(plugins: PluginReport, context: PluginContext = { platform: process.platform, arch: process.arch, env: process.env }): string[] {
  if (gpuDisabled(context.env)) return ["GPU plugins: off (JSD_GPU=0)"];
  const lines = plugins.loaded.length
    ? plugins.loaded.map((p) => `GPU plugin: ${p.backend} (${p.source}) ${p.path}`)
    : ["GPU plugins: none loaded"];
  for (const s of plugins.skipped) lines.push(`skipped ${s.backend} plugin (${s.source}) ${s.path}: ${s.reason}`);
  if (plugins.loaded.length === 0 && plugins.skipped.length === 0) {
    const installable = installableBackends(context.platform, context.arch);
    lines.push(
      installable.length
        ? `to add one: npx jsd gpu install <${installable.join("|")}> (docs/gpu.md)`
        : `node-llama-cpp publishes no GPU plugin for ${context.platform}-${context.arch}; build one from source (docs/gpu.md)`,
    );
  }
  return lines;
}

export function registerDoctor(program: Command, io: CliIo): void {
  program
    .command("doctor")
    .description("show the native build, backends and CPU features; explain what is missing")
    .option("--json", "machine-readable output", false)
    .action((flags: { json: boolean }) => {
      let info;
      try {
        info = systemInfo();
      } catch (error) {
        if (!isJsdError(error)) throw error;
        io.stdout.write(`japanese-stable-diffusion ${version()} on ${process.platform}-${process.arch}, Node ${process.versions.node}\n`);
        io.stdout.write(`native addon: NOT LOADED (${error.message})\n`);
        io.stdout.write(`to build it: ${INSTALL_HINTS[process.platform] ?? "install cmake, a C++17 compiler and sentencepiece, then npm run build"}\n`);
        throw error;
      }
      const model = { path: DEFAULT_MODEL_PATH, present: existsSync(DEFAULT_MODEL_PATH) };
      if (flags.json) {
        io.stdout.write(`${JSON.stringify({ ...info, defaultModel: model })}\n`);
        return;
      }
      const lines = [
        `japanese-stable-diffusion ${info.version} on ${info.platform}-${info.arch}, Node ${info.node}`,
        `native addon: loaded (ggml ${info.ggmlBuild})`,
        ...pluginLines(info.plugins),
        `backends: ${info.backends.join(", ")}`,
        `CPU features: ${info.cpuFeatures.join(" ") || "(none detected)"}`,
        `ggml CPU kernels built for: ${info.ggmlCpuFeatures.join(" ")}`,
        `threads: ${info.threads} by default (${info.logicalCores} logical cores)`,
        `devices: ${info.devices.map((d) => `${d.backend}:${d.index} ${d.description}${d.totalBytes ? ` (${(d.freeBytes / 2 ** 30).toFixed(1)}/${(d.totalBytes / 2 ** 30).toFixed(1)} GiB free)` : ""}`).join("; ")}`,
        `loadModel({ backend: "auto" }) uses: ${info.autoBackend}`,
        `embedded model: ${model.present ? model.path : `missing (${model.path}); run npm run build`}`,
      ];
      io.stdout.write(`${lines.join("\n")}\n`);
    });
}
