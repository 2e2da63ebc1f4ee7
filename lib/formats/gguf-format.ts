// The GGUF format's own facts, shared by the reader and the writer: the magic, version and
// alignment, the value types and their sizes, ggml's storage types, and metadata values.
import { MODEL_KEYS } from "./model-keys.js";

export const GGUF_MAGIC = "GGUF";
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** GGUF's own alignment key (ggml's GGUF_KEY_GENERAL_ALIGNMENT), which the model file writes too. */
export const GGUF_KEY_ALIGNMENT = MODEL_KEYS.alignment;
/** ggml's GGML_MAX_NAME: tensor names must be shorter (the NUL terminator takes the last byte). */
export const GGML_MAX_NAME = 64;
export const GGML_MAX_DIMS = 4;

/** GGUF value type ids (enum gguf_type). */
export const GgufType = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

export type GgufScalarType = Exclude<keyof typeof GgufType, "array">;
export type GgufNumberType = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64";
export type GgufBigIntType = "u64" | "i64";

/** A metadata value. Arrays of u8 are held as Uint8Array, other numeric arrays as number[] (bigint[] for 64-bit ints). */
export type GgufValue =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; itemType: "u8"; value: Uint8Array }
  | { type: "array"; itemType: Exclude<GgufNumberType, "u8">; value: number[] }
  | { type: "array"; itemType: GgufBigIntType; value: bigint[] }
  | { type: "array"; itemType: "bool"; value: boolean[] }
  | { type: "array"; itemType: "string"; value: string[] };

/** Constructors for metadata values. */
export const gguf = {
  u8: (value: number): GgufValue => ({ type: "u8", value }),
  i32: (value: number): GgufValue => ({ type: "i32", value }),
  u32: (value: number): GgufValue => ({ type: "u32", value }),
  f32: (value: number): GgufValue => ({ type: "f32", value }),
  f64: (value: number): GgufValue => ({ type: "f64", value }),
  u64: (value: bigint): GgufValue => ({ type: "u64", value }),
  i64: (value: bigint): GgufValue => ({ type: "i64", value }),
  bool: (value: boolean): GgufValue => ({ type: "bool", value }),
  str: (value: string): GgufValue => ({ type: "string", value }),
  bytes: (value: Uint8Array): GgufValue => ({ type: "array", itemType: "u8", value }),
  u32s: (value: number[]): GgufValue => ({ type: "array", itemType: "u32", value }),
  i32s: (value: number[]): GgufValue => ({ type: "array", itemType: "i32", value }),
  f32s: (value: number[]): GgufValue => ({ type: "array", itemType: "f32", value }),
  strs: (value: string[]): GgufValue => ({ type: "array", itemType: "string", value }),
};

/** Bytes of each fixed-size value type. */
export const SCALAR_BYTES: Record<Exclude<GgufScalarType, "string">, number> = {
  u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, u64: 8, i64: 8, f64: 8,
};

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** ggml storage types this reader knows the size of (ggml.c's type_traits). */
export const GGML_TYPES: ReadonlyMap<number, { name: string; blockSize: number; typeSize: number }> = new Map(
  (
    [
      [0, "f32", 1, 4],
      [1, "f16", 1, 2],
      [2, "q4_0", 32, 18],
      [3, "q4_1", 32, 20],
      [6, "q5_0", 32, 22],
      [7, "q5_1", 32, 24],
      [8, "q8_0", 32, 34],
      [9, "q8_1", 32, 36],
      [10, "q2_K", 256, 84],
      [11, "q3_K", 256, 110],
      [12, "q4_K", 256, 144],
      [13, "q5_K", 256, 176],
      [14, "q6_K", 256, 210],
      [15, "q8_K", 256, 292],
      [24, "i8", 1, 1],
      [25, "i16", 1, 2],
      [26, "i32", 1, 4],
      [27, "i64", 1, 8],
      [28, "f64", 1, 8],
      [30, "bf16", 1, 2],
    ] as const
  ).map(([id, name, blockSize, typeSize]) => [id, { name, blockSize, typeSize }]),
);

export function ggmlTypeName(id: number): string {
  return GGML_TYPES.get(id)?.name ?? `type${id}`;
}

