// `jsd doctor`: what this installation has, and what to do when the native part is missing.
import type { Command } from "commander";
import { existsSync } from "node:fs";
import { isJsdError } from "../errors.js";
import { DEFAULT_MODEL_PATH } from "../model.js";
import { systemInfo, version, type BinaryInfo } from "../system-info.js";
import type { CliIo } from "./io.js";

const INSTALL_HINTS: Record<string, string> = {
  linux: "Debian/Ubuntu: sudo apt-get install cmake g++ pkg-config libsentencepiece-dev, then npm run build",
  darwin: "macOS: xcode-select --install; brew install cmake sentencepiece pkg-config, then npm run build",
  win32: "Windows: install Visual Studio Build Tools (C++), CMake and vcpkg (vcpkg install sentencepiece), then npm run build",
};

/** Which binary is loaded, then each GPU binary passed over and why (one line each). */
export function binaryLines(binary: BinaryInfo): string[] {
  return [
    `native binary: ${binary.variant} (${binary.source}) ${binary.path}`,
    ...binary.skipped.map((s) => `skipped ${s.variant} binary (${s.source}) ${s.path}: ${s.reason}`),
  ];
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
        ...binaryLines(info.binary),
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
