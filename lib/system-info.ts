import { readFileSync } from "node:fs";
import { join } from "node:path";
import { autoBackend, backendOfRegistryName } from "./native/backends.js";
import type { PluginReport } from "./native/plugins.js";
import { native, nativeBinary, packageRoot, type NativeBinaryInfo, type NativeDevice } from "./native/addon.js";

export interface SystemInfo {
  /** This package's version. */
  version: string;
  /** ggml's version and the llama.cpp commit its source was taken from, e.g. "0.23.0 (80fb11ac73)". */
  ggmlBuild: string;
  ggmlVersion: string;
  ggmlCommit: string;
  /** ggml backends loaded into this process, e.g. ["CPU"] or ["CPU", "Vulkan"]. */
  backends: string[];
  /** Instruction sets the running CPU reports (e.g. "avx2", "avx512f"). */
  cpuFeatures: string[];
  /** Instruction sets ggml's CPU kernels were compiled for. */
  ggmlCpuFeatures: string[];
  /** Default number of compute threads: the physical core count. */
  threads: number;
  logicalCores: number;
  platform: string;
  arch: string;
  node: string;
  /** Compute devices of the compiled backends that this machine has. */
  devices: DeviceInfo[];
  /** The backend loadModel({ backend: "auto" }) picks. */
  autoBackend: string;
  /** The addon in use (its path, JSD_BINARY or node-gyp-build's choice) and its GPU plugins. */
  binary: BinaryInfo;
  /** GPU plugins loaded into the addon, and those found but passed over (with why). */
  plugins: PluginReport;
}

/** The native binary in use (path, variant, source) and the GPU binaries skipped before it. */
export type BinaryInfo = NativeBinaryInfo;

/** A compute device: backend ("cpu", "cuda", ...), ggml name, description, index among the backend's devices, memory. */
export type DeviceInfo = NativeDevice;

/** The compute devices this installation can use (CPU always; GPUs where a GPU backend is compiled in). */
export function listDevices(): DeviceInfo[] {
  return native()
    .listDevices()
    .map((d) => ({ ...d, backend: backendOfRegistryName(d.backend) }));
}

let packageVersion: string | undefined;

export function version(): string {
  packageVersion ??= (JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { version: string }).version;
  return packageVersion;
}

/** What this installation contains and what the machine offers it. */
export function systemInfo(): SystemInfo {
  const info = native().systemInfo();
  const devices = listDevices();
  const binary = nativeBinary();
  return {
    version: version(),
    ggmlBuild: `${info.ggmlVersion} (${info.ggmlCommit.slice(0, 10)})`,
    ggmlVersion: info.ggmlVersion,
    ggmlCommit: info.ggmlCommit,
    backends: info.backends,
    cpuFeatures: info.cpuFeatures,
    ggmlCpuFeatures: info.ggmlCpuFeatures,
    threads: info.physicalCores,
    logicalCores: info.logicalCores,
    platform: process.platform,
    arch: process.arch,
    node: process.versions.node,
    devices,
    autoBackend: autoBackend(devices),
    binary,
    plugins: binary.plugins,
  };
}
