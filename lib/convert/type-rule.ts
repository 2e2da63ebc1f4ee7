// Which ggml type and shape each tensor is written with (docs/model-format.md, "Tensor shapes and types"):
//
//   - ggml shapes are PyTorch's reversed (ne0 = PyTorch's last dimension).
//   - 1-D tensors (biases, norm weights) are always f32.
//   - Position embeddings (te., sc.) and the safety checker's concept tables are always f32.
//   - Projections (the UNet's proj_in/proj_out, 1x1 convs in SD v1 files; the VAE attention's
//     q/k/v/out) are written as Linear [in, out].
//   - Convolutions are [kw, kh, in, out] for f32/f16/bf16 and flattened to [kw*kh*in, out] (same
//     bytes) for quantized types, since quantized rows must be whole blocks.
//   - Every other matrix and convolution takes the requested type when its row size (ne0, after
//     flattening) is a multiple of that type's block size. Otherwise a k-quant falls back to the
//     32-block type of about its precision (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0: SD v1's
//     320-channel level has rows of 320 and 2880, not multiples of 256), and anything else to f16
//     (e.g. unet.conv_in: 4*3*3 = 36).
import { JsdError } from "../errors.js";
import { native } from "../native/addon.js";
import type { TensorRole } from "./architecture.js";

/** The types a model may be converted to (ggml's names). */
export const OUTPUT_TYPES = ["f32", "f16", "bf16", "q8_0", "q5_0", "q5_1", "q4_0", "q4_1", "q4_K", "q5_K", "q6_K"] as const;
export type OutputType = (typeof OUTPUT_TYPES)[number];

export interface TypeInfo {
  name: OutputType;
  ggmlType: number;
  blockSize: number;
  typeSize: number;
  quantized: boolean;
}

/** Accepts ggml's names in any case ("Q4_K", "q8_0"). */
export function parseOutputType(value: string, option = "type"): OutputType {
  const found = OUTPUT_TYPES.find((t) => t.toLowerCase() === String(value).toLowerCase());
  if (!found) throw new JsdError("JSD_INVALID_ARGUMENT", `unsupported ${option} '${value}' (supported: ${OUTPUT_TYPES.join(", ")})`);
  return found;
}

const traitsCache = new Map<OutputType, TypeInfo>();

export function typeInfo(name: OutputType): TypeInfo {
  let info = traitsCache.get(name);
  if (!info) {
    const t = native().typeTraits(name);
    info = { name, ggmlType: t.ggmlType, blockSize: t.blockSize, typeSize: t.typeSize, quantized: t.quantized };
    traitsCache.set(name, info);
  }
  return info;
}

/** Where a k-quant's rows do not hold whole 256-blocks, the 32-block type closest in precision. */
const K_QUANT_FALLBACK: Partial<Record<OutputType, OutputType>> = { q4_K: "q5_0", q5_K: "q5_1", q6_K: "q8_0" };

export interface TensorLayout {
  type: OutputType;
  /** ggml shape (ne0 first). */
  ne: number[];
  /** Values per row handed to the conversion routine (= ne0). */
  rowSize: number;
  nbytes: number;
}

/**
 * The output type and ggml shape of a tensor with PyTorch shape `shape` (the checkpoint's; a
 * projection may come as [out, in] or [out, in, 1, 1]).
 */
export function layoutFor(role: TensorRole, shape: readonly number[], requested: OutputType): TensorLayout {
  let ne: number[];
  let type: OutputType;
  if (shape.length === 1 || role === "vector" || role === "position_embedding" || role === "table") {
    type = "f32";
    ne = [...shape].reverse();
  } else {
    const pytorch = role === "projection" ? shape.slice(0, 2) : [...shape];
    const reversed = pytorch.reverse(); // [kw, kh, in, out] or [in, out]
    const rows = reversed[reversed.length - 1];
    const flatNe0 = reversed.slice(0, -1).reduce((a, b) => a * b, 1);
    const fits = (t: OutputType) => typeInfo(t).quantized && flatNe0 % typeInfo(t).blockSize === 0;
    const fallback = K_QUANT_FALLBACK[requested];
    if (!typeInfo(requested).quantized) {
      type = requested;
      ne = reversed;
    } else if (fits(requested) || (fallback !== undefined && fits(fallback))) {
      type = fits(requested) ? requested : fallback!;
      ne = [flatNe0, rows];
    } else {
      type = "f16";
      ne = reversed;
    }
  }
  const info = typeInfo(type);
  const rowSize = ne[0];
  const nelements = ne.reduce((a, b) => a * b, 1);
  return { type, ne, rowSize, nbytes: (nelements / info.blockSize) * info.typeSize };
}
