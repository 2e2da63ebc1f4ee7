// Loads the native addon, lazily so that pure-TS parts of the package (readers, schedulers) work
// even where no binary is present. lib/native-variants.ts picks the binary: JSD_BINARY, else a
// GPU build that passes a probe in a child process (lib/native-probe.ts), else the CPU binary
// through node-gyp-build: a local build (build/Release, tuned for this machine by `npm run
// build`) when there is one, else the prebuilt binary for this platform in prebuilds/ (what users
// installing from npm get).
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { linuxCpuFlags } from "./cpu-baseline.js";
import { probeBinary } from "./native-probe.js";
import { loadNativeBinary, type BinaryCandidate, type LoaderDeps, type SkippedBinary } from "./native-variants.js";

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

export type Shape4 = [n: number, c: number, h: number, w: number];

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
  threads: number;
  backend: string;
}

export interface NativeDevice {
  backend: string;
  name: string;
  description: string;
  index: number;
  freeBytes: number;
  totalBytes: number;
}

export interface NativeComponentMemory {
  /** "text_encoder", "unet" or "vae". */
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
  info(): NativeModelInfo;
  memory(): NativeComponentMemory[];
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
  backend?: string;
  device?: number;
  textEncoderOnCpu?: boolean;
  vaeOnCpu?: boolean;
  releaseIdleWeights?: boolean;
}

export interface NativeAddon {
  loadModel(path: string, options?: NativeLoadOptions): Promise<NativeModel>;
  systemInfo(): NativeSystemInfo;
  listDevices(): NativeDevice[];
  /** Storage traits of a ggml type by its name ("f16", "q8_0", "q4_K", ...). */
  typeTraits(name: string): NativeTypeTraits;
  /** Converts float32 rows of `rowSize` values to a ggml type with ggml's own routines (off the JS thread). */
  /** interleave: q8_0 rows (a multiple of 16 of them) in the CPU kernel's layout (native/q8_gemm.h). */
  convertTensor(values: Float32Array, rowSize: number, type: string, interleave?: boolean): Promise<Uint8Array>;
  /** ggml mul_mat throughput of a weight type: weights [k, m] times f32 [k, n]. Blocks the calling thread (benchmarks only). */
  benchMatmul(
    type: string,
    m: number,
    n: number,
    k: number,
    threads: number,
    runs: number,
    repack?: boolean,
  ): { secondsPerRun: number; cpuSecondsPerRun: number; flops: number; kernel: string };
  compareMatmul(type: string, m: number, n: number, k: number, threads: number): { kernel: string; maxAbsDiff: number; maxAbs: number };
  compareAttention(heads: number, headDim: number, lq: number, lk: number, batch: number, threads: number): { fused: boolean; maxAbsDiff: number; maxAbs: number };
  SentencePiece: new (bytes: Uint8Array) => NativeSentencePiece;
}

/** The package root: both lib/*.ts (tests) and dist/*.js sit one level below it. */
export const packageRoot = fileURLToPath(new URL("..", import.meta.url));

/** The binary native() loaded, and the GPU binaries it passed over. */
export interface NativeBinaryInfo extends BinaryCandidate {
  skipped: SkippedBinary[];
}

/** The real file system, child-process probe, require and node-gyp-build (tests replace parts). */
export function defaultLoaderDeps(root: string = packageRoot): LoaderDeps<NativeAddon> {
  const require = createRequire(import.meta.url);
  // Optional packages are installed beside this one; resolve from its own package.json.
  const fromRoot = createRequire(join(root, "package.json"));
  return {
    env: process.env,
    packageRoot: root,
    platform: process.platform,
    arch: process.arch,
    exists: existsSync,
    packageVersion(dir) {
      try {
        return (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version?: string }).version;
      } catch {
        return undefined;
      }
    },
    findPackage(name) {
      try {
        return dirname(fromRoot.resolve(`${name}/package.json`));
      } catch {
        return undefined;
      }
    },
    probe: (candidate) => probeBinary(candidate.path, candidate.variant),
    load: (path) => require(path) as NativeAddon,
    findCpuBinary: (dir) => (require("node-gyp-build") as { path(dir: string): string }).path(dir),
    cpuFlags: () => (process.platform === "linux" ? linuxCpuFlags() : undefined),
    warn: (message) => process.emitWarning(message, { code: "JSD_GPU_FALLBACK" }),
  };
}

let addon: NativeAddon | undefined;
let binary: NativeBinaryInfo | undefined;

export function native(): NativeAddon {
  if (addon) return addon;
  const choice = loadNativeBinary(defaultLoaderDeps());
  binary = { ...choice.binary, skipped: choice.skipped };
  addon = choice.addon;
  return addon;
}

/** Which binary is in use (loads it first if needed). */
export function nativeBinary(): NativeBinaryInfo {
  native();
  const { skipped, ...chosen } = binary!;
  return { ...chosen, skipped: skipped.map((s) => ({ ...s })) };
}
