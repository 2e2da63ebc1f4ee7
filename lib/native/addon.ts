// Loads the native addon, lazily so that pure-TS parts of the package (readers, schedulers) work
// even where no binary is present. The addon is JSD_BINARY if set, else node-gyp-build's choice:
// a local build (build/Release, tuned for this machine by `npm run build`) when there is one,
// else the prebuilt binary for this platform in prebuilds/ (what users installing from npm get).
// ggml's shared libraries and CPU plugins lie beside it. Then the ggml backends are loaded: the
// CPU plugin from the addon's folder, and the GPU plugins lib/native/plugins.ts finds and
// test-loads in a child process first (a local build's, node-llama-cpp's packages, the cache).
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { firstLine, JsdError } from "../errors.js";
import { defaultPluginDeps } from "./plugin-deps.js";
import { pluginReport, selectPlugins, type PluginLoadResult, type PluginReport } from "./plugins.js";
import { packageRoot } from "../package-root.js";
import type { Shape4 } from "../shape.js";
import type { FeatureExtractorSettings } from "../safety/index.js";

export { packageRoot };

export interface NativeSystemInfo {
  ggmlVersion: string;
  ggmlCommit: string;
  backends: string[];
  cpuFeatures: string[];
  ggmlCpuFeatures: string[];
  physicalCores: number;
  logicalCores: number;
}

export interface NativeSentencePiece {
  encode(text: string): { ids: Int32Array; pieces: string[] };
  decode(ids: number[]): string;
  pieceToId(piece: string): number;
  idToPiece(id: number): string;
  readonly vocabSize: number;
  readonly specialIds: { unk: number; pad: number; eos: number; bos: number };
}

export interface NativeTypeTraits {
  name: string;
  ggmlType: number;
  blockSize: number;
  typeSize: number;
  quantized: boolean;
}


/** CLIPFeatureExtractor's settings (feature_extractor/preprocessor_config.json), as the model file stores them; lib/safety owns their meaning. */
export type NativeFeatureExtractorConfig = FeatureExtractorSettings;

/** The model file's safety checker (diffusers' StableDiffusionSafetyChecker): sizes, its feature extractor and its concept tables. */
export interface NativeSafetyCheckerInfo {
  /** The side of the square pixel_values it takes (224). */
  imageSize: number;
  /** The width of an image embedding and of each concept embedding (768). */
  projectionDim: number;
  featureExtractor: NativeFeatureExtractorConfig;
  /** [concepts, projectionDim], row-major. */
  conceptEmbeds: Float32Array;
  /** One threshold per concept. */
  conceptWeights: Float32Array;
  /** [special-care concepts, projectionDim], row-major. */
  specialCareEmbeds: Float32Array;
  specialCareWeights: Float32Array;
}

export interface NativeModelInfo {
  metadata: Record<string, string>;
  tokenizer: { padId: number; eosId: number; unkId: number; doLowerCase: boolean; modelMaxLength: number };
  sentencepiece: Uint8Array;
  textHiddenSize: number;
  textMaxLength: number;
  latentChannels: number;
  /** Image pixels per latent pixel along each side (8 for SD v1). */
  vaeScaleFactor: number;
  scalingFactor: number;
  /** null when the model file has no safety checker. */
  safetyChecker: NativeSafetyCheckerInfo | null;
  threads: number;
  backend: string;
}

export interface NativeDevice {
  backend: string;
  name: string;
  description: string;
  /** ggml's device type: "cpu", "gpu", "igpu" or "accel". */
  type: string;
  index: number;
  freeBytes: number;
  totalBytes: number;
}

export interface NativeComponentMemory {
  /** "text_encoder", "unet", "vae" or "safety_checker". */
  name: string;
  /** Where this network computes: "cpu", "cuda", "vulkan" or "metal". */
  backend: string;
  /** All of its weights; the sum of the three buffers below. */
  weightBytes: number;
  /** Weights read in place from the memory-mapped model file (CPU). */
  mappedBytes: number;
  /** Weights copied into ggml's CPU repacking buffer (q4_0, q4_K). */
  packedBytes: number;
  /** Weights copied into a backend buffer (GPU memory on a GPU backend). */
  deviceBytes: number;
  /** Its compute buffer as of the last graph change (0 once freed for another network). */
  computeBytes: number;
}

/** A loaded model file. Every compute call runs on the model's own thread, one at a time, in call order. */
export interface NativeModel {
  encodeText(ids: Int32Array, batch: number, length: number): Promise<Float32Array>;
  predictNoise(latents: Float32Array, shape: Shape4, timesteps: Float32Array, textStates: Float32Array, textLength: number, textDim: number): Promise<Float32Array>;
  decodeLatents(latents: Float32Array, shape: Shape4): Promise<Float32Array>;
  encodeImage(pixels: Float32Array, shape: Shape4): Promise<Float32Array>;
  /** The safety checker's image_embeds [batch, projectionDim] of pixel_values [batch, 3, imageSize, imageSize]; JSD_NO_SAFETY_CHECKER without one. */
  embedImages(pixelValues: Float32Array, batch: number): Promise<Float32Array>;
  info(): NativeModelInfo;
  memory(): NativeComponentMemory[];
  placement(): NativePlacement;
  /** The largest total of compute buffers held at once since the last reset; `reset` starts a new measurement. */
  peakComputeBytes(reset?: boolean): number;
  /** Frees every cached graph's compute buffer (after the jobs queued before it). */
  releaseComputeBuffers(): Promise<void>;
  /** Stops the computation in progress at its next graph node; that call rejects with JSD_ABORTED. */
  abort(): void;
  close(): Promise<void>;
}

export interface NativeLoadOptions {
  threads?: number;
  flashAttention?: boolean;
  /** ggml's registry name, lower case ("cpu", "cuda", "vulkan", "mtl"). */
  backend?: string;
  device?: number;
  textEncoderOnCpu?: boolean;
  vaeOnCpu?: boolean;
  releaseIdleWeights?: boolean;
  cpuFallback?: boolean;
  deviceMemoryLimit?: number;
  planWidth?: number;
  planHeight?: number;
  vaeTile?: number;
  vaeTileThreshold?: number;
}

export interface NativeNetworkPlacement {
  /** "text_encoder", "unet", "vae" or "safety_checker". */
  name: string;
  onCpu: boolean;
  /** Its weights on the device (what the plan counted; 0 when the backend is the CPU). */
  weightBytes: number;
  /** Its largest compute buffer at the planned size, on the device (0 when the backend is the CPU). */
  computeBytes: number;
  reason: string;
}

/** Where each network runs, decided before the weights were loaded. */
export interface NativePlacement {
  /** Some network runs on the GPU. */
  gpu: boolean;
  /** What the plan holds on the device at its peak. */
  deviceBytes: number;
  /** What it was allowed: the device's free memory or deviceMemoryLimit. */
  deviceBudget: number;
  networks: NativeNetworkPlacement[];
}

/** The addon's development diagnostics (binding/diagnostics.cpp): not for users, and blocking. */
export interface NativeDiagnostics {
  /** ggml mul_mat throughput of a weight type: weights [k, m] times f32 [k, n]. */
  benchMatmul(
    type: string,
    m: number,
    n: number,
    k: number,
    threads: number,
    runs: number,
    repack?: boolean,
  ): { secondsPerRun: number; cpuSecondsPerRun: number; flops: number; kernel: string };
  /** The engine's matrix product against ggml's plain one on random data; checksum hashes the engine's output bits. */
  compareMatmul(
    type: string,
    m: number,
    n: number,
    k: number,
    threads: number,
  ): { kernel: string; maxAbsDiff: number; maxAbs: number; checksum: string };
  /** The q8_0 kernels this build and CPU can run, best first (the names JSD_Q8_KERNEL may force). */
  q8Kernels(): string[];
  /** The fused CPU attention against ggml's ops on random data. */
  compareAttention(
    heads: number,
    headDim: number,
    lq: number,
    lk: number,
    batch: number,
    threads: number,
    bf16?: boolean,
  ): { fused: boolean; kernel: string; maxAbsDiff: number; maxAbs: number };
  /** The engine's CPU attention on random data, timed (scripts/bench/attention.mjs). */
  benchAttention(heads: number, headDim: number, lq: number, lk: number, batch: number, threads: number, runs: number): { kernel: string; cpuSecondsPerRun: number; flops: number };
  /** The UNet's fused CPU ops against the ggml ops they replace; exact: expected to give the same bits. */
  checkUnetOps(threads: number): Array<{ name: string; exact: boolean; maxAbsDiff: number; maxAbs: number }>;
  /** The channels-last CPU convolution (native/kernels/cpu_conv.h) against ggml's on random data; kernel names what ran. */
  compareConv(shape: NativeConvCheckShape, threads: number): { kernel: string; maxAbsDiff: number; maxAbs: number };
  /** The channels-last CPU group norm against ggml's on random data around `mean`. */
  compareGroupNorm(channels: number, width: number, height: number, batch: number, groups: number, mean: number, threads: number): { kernel: string; maxAbsDiff: number; maxAbs: number };
}

/** One convolution for compareConv: the weight's type, channels, input size, kernel and geometry. */
export interface NativeConvCheckShape {
  type: "f32" | "f16" | "bf16";
  in: number;
  out: number;
  width: number;
  height: number;
  batch: number;
  kernel: number;
  stride: number;
  pad: number;
  padAfter: number;
  upsample: boolean;
  residual: boolean;
}

export interface NativeAddon {
  /** Registers ggml's CPU backend from cpuDir (the addon's folder), then each GPU plugin file; once each per process. */
  loadBackends(cpuDir: string, plugins: string[]): PluginLoadResult[];
  loadModel(path: string, options?: NativeLoadOptions): Promise<NativeModel>;
  /** The placement loadModel() would make, without loading weights. */
  planModel(path: string, options?: NativeLoadOptions): Promise<NativePlacement>;
  systemInfo(): NativeSystemInfo;
  listDevices(): NativeDevice[];
  /** Storage traits of a ggml type by its name ("f16", "q8_0", "q4_K", ...). */
  typeTraits(name: string): NativeTypeTraits;
  /** Converts float32 rows of `rowSize` values to a ggml type with ggml's own routines (off the JS thread). */
  /** interleave: q8_0 rows (a multiple of 16 of them) in the CPU kernel's layout (native/kernels/q8_gemm.h). */
  convertTensor(values: Float32Array, rowSize: number, type: string, interleave?: boolean): Promise<Uint8Array>;
  /** Development diagnostics (benchmarks and kernel checks); they block the calling thread. */
  diagnostics: NativeDiagnostics;
  SentencePiece: new (bytes: Uint8Array) => NativeSentencePiece;
}

/** The addon file in use, where it came from, and the GPU plugins loaded into it or passed over. */
export interface NativeBinaryInfo {
  path: string;
  source: "JSD_BINARY" | "node-gyp-build";
  plugins: PluginReport;
}

let addon: NativeAddon | undefined;
let binary: NativeBinaryInfo | undefined;

/** JSD_BINARY, else node-gyp-build's choice (build/Release, then prebuilds/). */
function findAddon(): { path: string; source: NativeBinaryInfo["source"] } {
  const explicit = process.env.JSD_BINARY?.trim();
  if (explicit) return { path: resolve(explicit), source: "JSD_BINARY" };
  const require = createRequire(import.meta.url);
  try {
    return { path: (require("node-gyp-build") as { path(dir: string): string }).path(packageRoot), source: "node-gyp-build" };
  } catch (error) {
    throw new JsdError(
      "JSD_NATIVE_UNAVAILABLE",
      `the native addon could not be found (${firstLine(error)}). No prebuilt binary matches ${process.platform}-${process.arch}; ` +
        "build it from source with `npm run build` (needs cmake, a C++17 compiler and libsentencepiece-dev).",
      { cause: error },
    );
  }
}

export function native(): NativeAddon {
  if (addon) return addon;
  const found = findAddon();
  let loaded: NativeAddon;
  try {
    loaded = createRequire(import.meta.url)(found.path) as NativeAddon;
  } catch (error) {
    throw new JsdError("JSD_NATIVE_UNAVAILABLE", `the native addon ${found.path} could not be loaded (${firstLine(error)})`, { cause: error });
  }
  const deps = defaultPluginDeps(packageRoot, found.path);
  const choice = selectPlugins(deps);
  // Throws JSD_NATIVE_UNAVAILABLE when no CPU plugin this CPU can run lies beside the addon.
  const results = loaded.loadBackends(dirname(found.path), choice.plugins);
  binary = { ...found, plugins: pluginReport(choice, results, deps.warn) };
  addon = loaded;
  return addon;
}

/** Which addon is in use and which GPU plugins it loaded (loads them first if needed). */
export function nativeBinary(): NativeBinaryInfo {
  native();
  return structuredClone(binary!);
}
