// diffusers folder -> JSD model file (GGUF), streamed one tensor at a time:
// read -> float32 -> ggml type (native, off the JS thread) -> write, in chunks of whole rows
// (about 4M values), the next chunk read while one is converted and the previous one written.
// The converter's own buffers are a few chunks, whatever the tensor sizes; PyTorch .bin sources
// also hold the current tensor whole (their reader returns whole tensors).
// The output is written to `<out>.tmp-<pid>-<n>` in the same folder and renamed when complete;
// any failure or abort removes the temporary file.
import { rename, stat, unlink } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { JsdError, JsdTypeError } from "../errors.js";
import { GgufWriter, type GgufTensorSpec } from "../formats/gguf-writer.js";
import { MODEL_KEYS } from "../formats/model-keys.js";
import { native } from "../native/addon.js";
import { isRowLookup, type Component } from "./architecture.js";
import { bytesToFloat32 } from "./dtype.js";
import { readDiffusersFolder } from "./folder.js";
import { buildMetadata, tokenizerIds } from "./metadata.js";
import { componentsOf, expectedTensors, planComponent, type PlannedTensor } from "./plan.js";
import { BufferPool, openTensorSource, type TensorSource } from "./source.js";
import { parseOutputType, typeInfo, type OutputType } from "./type-rule.js";

export interface ConvertProgress {
  /** Name (in the model file) of the tensor just written. */
  tensor: string;
  component: Component;
  /** 0-based index of the tensor just written; `index + 1` of `total` are done. */
  index: number;
  total: number;
  /** Bytes written to the output so far, header included. */
  bytesWritten: number;
}

export interface ConvertOptions {
  /** Type of the UNet and (unless `textEncoderType` is given) the text encoder. Default f16. */
  type?: string;
  /** Type of the VAE. Default f16. */
  vaeType?: string;
  /** Type of the text encoder (and of the safety checker's matrices). Default: `type`. */
  textEncoderType?: string;
  /** Type of the safety checker's matrices. Default: the text encoder's type. */
  safetyCheckerType?: string;
  /**
   * Convert the safety checker and its feature extractor when the folder's model_index.json names
   * them (rinna's does). Default true; false leaves them out (as `jsd convert --no-safety-checker`).
   */
  safetyChecker?: boolean;
  /**
   * Store q8_0 matrices (rows in groups of 16) in the layout of the engine's AVX-512 VNNI CPU
   * kernel, listed under `jsd.q8_0_interleaved`: such CPUs then use them in place from the mapped
   * file instead of reordering a copy at load; other backends and CPUs reorder them back at load.
   */
  cpuLayout?: boolean;
  /** Replace an existing output file. */
  force?: boolean;
  onProgress?(progress: ConvertProgress): void;
  signal?: AbortSignal;
}

export interface ConvertResult {
  path: string;
  /** File size in bytes. */
  size: number;
  tensors: number;
  dataSha256: string;
  /** The type of each component's matrices; `safety_checker` only when the file has one. */
  types: Partial<Record<Component, OutputType>>;
  /** Tensors per written ggml type, e.g. { f32: 530, f16: 12, q8_0: 423 }. */
  tensorTypes: Record<string, number>;
  seconds: number;
}

let tmpCounter = 0;

function aborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new JsdError("JSD_ABORTED", "conversion aborted", { cause: signal.reason });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

/** Values per chunk: tensors are read, converted and written in runs of whole rows of about this size. */
export const CHUNK_VALUES = 1 << 22;

/** @internal Tuning knobs, changed by tests only. */
export const convertTuning = { chunkValues: CHUNK_VALUES };

const SOURCE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

/** One run of whole rows of a tensor. */
interface Chunk {
  tensor: PlannedTensor;
  index: number;
  /** Value range [first, first + count) within the tensor. */
  first: number;
  count: number;
  last: boolean;
}

/**
 * q8_0 matrices the CPU kernel can read interleaved, by the engine's rule (native/model/weights.cpp):
 * rows in groups of 16, and not read by rows (embeddings are read by row lookups).
 */
function interleavable(t: PlannedTensor): boolean {
  return t.layout.type === "q8_0" && t.layout.ne.length === 2 && t.layout.ne[1] % INTERLEAVE_ROWS === 0 && !isRowLookup(t.role);
}

/** Rows per group of the CPU kernel's q8_0 layout (native/kernels/q8_gemm.h). */
const INTERLEAVE_ROWS = 16;

function* chunksOf(plan: readonly PlannedTensor[], interleaved: ReadonlySet<string>): Generator<Chunk> {
  for (let index = 0; index < plan.length; index++) {
    const tensor = plan[index];
    const total = tensor.sourceShape.reduce((a, b) => a * b, 1);
    const row = tensor.layout.rowSize;
    // Interleaved matrices are reordered 16 rows at a time: chunks hold whole groups.
    const unit = interleaved.has(tensor.name) ? INTERLEAVE_ROWS : 1;
    const step = Math.max(1, Math.floor(convertTuning.chunkValues / row / unit)) * unit * row;
    for (let first = 0; first < total || first === 0; first += step) {
      const count = Math.min(step, total - first);
      yield { tensor, index, first, count, last: first + count >= total };
      if (total === 0) break;
    }
  }
}

async function encode(data: Uint8Array, chunk: Chunk, floats: BufferPool, slot: number, interleave: boolean): Promise<Uint8Array> {
  const t = chunk.tensor;
  if (t.layout.type === "f32" && t.sourceDtype === "F32") return data;
  const values = bytesToFloat32(t.sourceDtype, data, t.sourceName, (n) => {
    const bytes = floats.get(slot, n * 4);
    return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  });
  if (t.layout.type === "f32") return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = await native().convertTensor(values, t.layout.rowSize, t.layout.type, interleave);
  const type = typeInfo(t.layout.type);
  if (out.length !== (chunk.count / type.blockSize) * type.typeSize) {
    throw new JsdError("JSD_INTERNAL", `converting '${t.sourceName}' to ${t.layout.type} gave ${out.length} bytes for ${chunk.count} values`);
  }
  return out;
}

/** Converts a diffusers JSD folder to a model file. */
export async function convert(inputFolder: string, outputPath: string, options: ConvertOptions = {}): Promise<ConvertResult> {
  const started = performance.now();
  if (typeof inputFolder !== "string" || inputFolder.length === 0) throw new JsdError("JSD_INVALID_ARGUMENT", "inputFolder must be a non-empty string");
  if (typeof outputPath !== "string" || outputPath.length === 0) throw new JsdError("JSD_INVALID_ARGUMENT", "outputPath must be a non-empty string");
  if (options === null || typeof options !== "object") throw new JsdTypeError("options must be an object");
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new JsdTypeError("signal must be an AbortSignal");
  if (options.onProgress !== undefined && typeof options.onProgress !== "function") throw new JsdTypeError("onProgress must be a function");
  const fileType = parseOutputType(options.type ?? "f16", "type");
  const textEncoderType = options.textEncoderType !== undefined ? parseOutputType(options.textEncoderType, "text encoder type") : fileType;
  const types: Record<Component, OutputType> = {
    text_encoder: textEncoderType,
    unet: fileType,
    vae: parseOutputType(options.vaeType ?? "f16", "VAE type"),
    // By default quantized like the text encoder's: the same kind of network, and as small a cost.
    safety_checker: options.safetyCheckerType !== undefined ? parseOutputType(options.safetyCheckerType, "safety checker type") : textEncoderType,
  };
  if (options.safetyChecker !== undefined && typeof options.safetyChecker !== "boolean") throw new JsdTypeError("safetyChecker must be a boolean");
  const { signal, onProgress } = options;
  aborted(signal);

  const output = resolve(outputPath);
  if (await exists(output)) {
    if (!options.force) throw new JsdError("JSD_EXISTS", `${output} already exists (use force / --force to replace it)`);
    if (!(await stat(output)).isFile()) throw new JsdError("JSD_INVALID_ARGUMENT", `${output} exists and is not a regular file`);
  }

  try {
    if (!(await stat(dirname(output))).isDirectory()) throw new Error("not a folder");  // an uncoded cause: wrapped in a coded error before it leaves the package
  } catch (error) {
    throw new JsdError("JSD_NOT_FOUND", `the output folder ${dirname(output)} does not exist`, { cause: error });
  }

  const folder = await readDiffusersFolder(inputFolder, { safetyChecker: options.safetyChecker });
  const components = componentsOf(folder);
  const ids = tokenizerIds(folder);
  const expected = expectedTensors(folder);

  const readers = new Map<Component, TensorSource>();
  let writer: GgufWriter | undefined;
  const tmp = `${output}.tmp-${process.pid}-${++tmpCounter}`;
  let pendingRead: Promise<Uint8Array> | undefined;
  let pendingWrite: Promise<void> | undefined;
  try {
    const plan: PlannedTensor[] = [];
    for (const component of components) {
      const file = folder.weights[component];
      const tensors = expected[component];
      if (!file || !tensors) throw new JsdError("JSD_INTERNAL", `the folder was read without the ${component}`);
      const reader = await openTensorSource(file.path);
      readers.set(component, reader);
      plan.push(...planComponent(component, reader, file.relative, tensors, types[component]));
    }
    aborted(signal);

    const specs: GgufTensorSpec[] = plan.map((t) => ({ name: t.name, ne: t.layout.ne, ggmlType: typeInfo(t.layout.type).ggmlType, nbytes: t.layout.nbytes }));
    const interleaved = new Set(options.cpuLayout ? plan.filter(interleavable).map((t) => t.name) : []);
    const embeddings = plan.filter((t) => isRowLookup(t.role)).map((t) => t.name);
    const metadata = buildMetadata(folder, fileType, ids, embeddings, [...interleaved]);
    writer = await GgufWriter.create(tmp, metadata, specs, { sha256Key: MODEL_KEYS.dataSha256 });
    const w = writer;

    // Prefetched reads and in-flight writes are awaited later; mark them handled now so that a
    // failure while something else is awaited is not reported as an unhandled rejection.
    const handled = <T>(p: Promise<T>): Promise<T> => {
      p.catch(() => {});
      return p;
    };
    // Chunk k is read into slot k % 3 of `raw` (and decoded into slot k % 3 of `floats`). When
    // chunk k + 1 starts reading, the write of chunk k - 2 (which may still point into those
    // buffers) has been awaited, so three slots are never overwritten while in use.
    const raw = new BufferPool(3);
    const floats = new BufferPool(3);
    const read = (c: Chunk, k: number) => {
      const bytes = SOURCE_BYTES[c.tensor.sourceDtype];
      return handled(readers.get(c.tensor.component)!.readBytes(c.tensor.sourceName, c.first * bytes, (c.first + c.count) * bytes, raw, k));
    };
    const chunks = chunksOf(plan, interleaved);
    let next = chunks.next();
    let k = 0;
    pendingRead = next.done ? undefined : read(next.value, 0);
    while (!next.done) {
      aborted(signal);
      const chunk = next.value;
      const data = await pendingRead!;
      next = chunks.next();
      pendingRead = next.done ? undefined : read(next.value, k + 1);
      const bytes = await encode(data, chunk, floats, k, interleaved.has(chunk.tensor.name));
      if (pendingWrite) await pendingWrite;
      aborted(signal);
      pendingWrite = handled(
        w.writeTensorPart(bytes).then(() => {
          if (!chunk.last) return;
          const t = chunk.tensor;
          onProgress?.({ tensor: t.name, component: t.component, index: chunk.index, total: plan.length, bytesWritten: w.bytesWritten });
        }),
      );
      k++;
    }
    await pendingWrite;
    pendingWrite = undefined;
    aborted(signal);
    const result = await writer.finish();
    if (!options.force && (await exists(output))) {
      throw new JsdError("JSD_EXISTS", `${output} appeared while converting (use force / --force to replace it)`);
    }
    await rename(tmp, output);
    const tensorTypes: Record<string, number> = {};
    for (const t of plan) tensorTypes[t.layout.type] = (tensorTypes[t.layout.type] ?? 0) + 1;
    return {
      path: output,
      size: result.size,
      tensors: plan.length,
      dataSha256: result.dataSha256,
      types: Object.fromEntries(components.map((c) => [c, types[c]])),
      tensorTypes,
      seconds: (performance.now() - started) / 1000,
    };
  } catch (error) {
    await pendingWrite?.catch(() => {});
    if (writer) {
      await writer.abort();
      await unlink(tmp).catch(() => {});
    }
    throw error;
  } finally {
    for (const reader of readers.values()) await reader.close().catch(() => {});
  }
}
