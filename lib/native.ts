// Loads the native addon through node-gyp-build: a local build (build/Release, tuned for this
// machine by `npm run build`) when there is one, else the prebuilt binary for this platform in
// prebuilds/ (what users installing from npm get). Loading is lazy so that pure-TS parts of the package (readers,
// schedulers) work even where the binary is missing.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { JsdError } from "./errors.js";

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
  name: string;
  weightBytes: number;
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
  /** Stops the computation in progress at its next graph node; that call rejects with JSD_ABORTED. */
  abort(): void;
  close(): Promise<void>;
}

export interface NativeLoadOptions {
  threads?: number;
  flashAttention?: boolean;
  backend?: string;
  device?: number;
}

export interface NativeAddon {
  loadModel(path: string, options?: NativeLoadOptions): Promise<NativeModel>;
  systemInfo(): NativeSystemInfo;
  listDevices(): NativeDevice[];
  /** Storage traits of a ggml type by its name ("f16", "q8_0", "q4_K", ...). */
  typeTraits(name: string): NativeTypeTraits;
  /** Converts float32 rows of `rowSize` values to a ggml type with ggml's own routines (off the JS thread). */
  convertTensor(values: Float32Array, rowSize: number, type: string): Promise<Uint8Array>;
  /** ggml mul_mat throughput of a weight type: weights [k, m] times f32 [k, n]. Blocks the calling thread (benchmarks only). */
  benchMatmul(type: string, m: number, n: number, k: number, threads: number, runs: number): { secondsPerRun: number; cpuSecondsPerRun: number; flops: number };
  SentencePiece: new (bytes: Uint8Array) => NativeSentencePiece;
}

/** The package root: both lib/*.ts (tests) and dist/*.js sit one level below it. */
export const packageRoot = fileURLToPath(new URL("..", import.meta.url));

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (addon) return addon;
  const require = createRequire(import.meta.url);
  try {
    const load = require("node-gyp-build") as (dir: string) => NativeAddon;
    addon = load(packageRoot);
  } catch (error) {
    throw new JsdError(
      "JSD_NATIVE_UNAVAILABLE",
      `the native addon could not be loaded (${(error as Error).message.split("\n")[0]}). ` +
        `No prebuilt binary matches ${process.platform}-${process.arch}; build it from source with \`npm run build\` ` +
        `(needs cmake, a C++17 compiler and libsentencepiece-dev).`,
      { cause: error },
    );
  }
  return addon;
}
