// Loads the native addon: a prebuilt binary from prebuilds/ first, a local build second
// (node-gyp-build's order). Loading is lazy so that pure-TS parts of the package (readers,
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

export interface NativeAddon {
  systemInfo(): NativeSystemInfo;
  /** Storage traits of a ggml type by its name ("f16", "q8_0", "q4_K", ...). */
  typeTraits(name: string): NativeTypeTraits;
  /** Converts float32 rows of `rowSize` values to a ggml type with ggml's own routines (off the JS thread). */
  convertTensor(values: Float32Array, rowSize: number, type: string): Promise<Uint8Array>;
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
