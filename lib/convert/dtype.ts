// Source dtypes: weights may be F32, F16 or BF16 in the checkpoint; they are turned into float32
// values for ggml's conversion routines. Integer tensors are only accepted as buffers, which are dropped.
import { endianness } from "node:os";
import { JsdError } from "../errors.js";
import type { RawTensor, SafetensorsDtype } from "../formats/safetensors.js";

export const FLOAT_DTYPES: ReadonlySet<SafetensorsDtype> = new Set(["F32", "F16", "BF16"]);

if (endianness() !== "LE") throw new JsdError("JSD_INTERNAL", "the converter needs a little-endian machine");

let halfTable: Float32Array | undefined;

/** float32 value of every IEEE half bit pattern. */
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      // zero or subnormal: mant * 2^-24
      table[h] = (mant / 16777216) * (sign ? -1 : 1);
      if (mant === 0) bits[h] = sign;
    } else if (exp === 31) {
      bits[h] = sign | 0x7f800000 | (mant << 13);
    } else {
      bits[h] = sign | ((exp + 112) << 23) | (mant << 13);
    }
  }
  halfTable = table;
  return table;
}

/**
 * float32 values of a raw floating-point tensor. For F32 data that is already 4-byte aligned, the
 * result is a view of the same memory (no copy).
 */
export function rawToFloat32(tensor: RawTensor, alloc?: (n: number) => Float32Array): Float32Array {
  return bytesToFloat32(tensor.dtype, tensor.data, tensor.name, alloc);
}

/** float32 values of raw little-endian `dtype` bytes (`name` is for the error message). */
export function bytesToFloat32(
  dtype: SafetensorsDtype,
  data: Uint8Array,
  name: string,
  alloc: (n: number) => Float32Array = (n) => new Float32Array(n),
): Float32Array {
  switch (dtype) {
    case "F32": {
      const n = data.length / 4;
      if (data.byteOffset % 4 === 0) return new Float32Array(data.buffer, data.byteOffset, n);
      const out = alloc(n);
      new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(data);
      return out;
    }
    case "F16": {
      const n = data.length / 2;
      const src = data.byteOffset % 2 === 0 ? new Uint16Array(data.buffer, data.byteOffset, n) : new Uint16Array(data.slice().buffer);
      const table = halfToFloatTable();
      const out = alloc(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]];
      return out;
    }
    case "BF16": {
      const n = data.length / 2;
      const src = data.byteOffset % 2 === 0 ? new Uint16Array(data.buffer, data.byteOffset, n) : new Uint16Array(data.slice().buffer);
      const out = alloc(n);
      const bits = new Uint32Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
      return out;
    }
    default:
      throw new JsdError("JSD_BAD_MODEL", `tensor '${name}' has dtype ${dtype}; weights must be F32, F16 or BF16`);
  }
}
