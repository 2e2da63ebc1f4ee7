// PyTorch checkpoints in the zip format torch.save has written since 1.6 (`*.bin`, `*.ckpt`,
// `*.pt`, `*.pth`): a stored zip archive holding `<top>/data.pkl` (the pickled state dict, whose
// tensors refer to their storages by persistent id) and one raw little-endian entry per storage,
// `<top>/data/<key>`.
//
// data.pkl is interpreted as data by ./pickle.ts with an allowlist of the few torch and
// collections globals a state dict uses; nothing in the file is ever executed. Each tensor must be
// contiguous; its bytes are read straight out of its storage entry, one tensor at a time.
import { open } from "node:fs/promises";
import { JsdError } from "../errors.js";
import type { CheckpointReader, TensorInfo } from "./checkpoint-reader.js";
import { describe, isTuple, PickleDict, PickleGlobal, unpickle, type GlobalHandler, type PickleCallContext } from "./pickle.js";
import { DTYPE_BYTES, type RawTensor, type SafetensorsDtype } from "./safetensors.js";
import { ZipReader, type ZipEntry } from "./zip.js";

/** torch storage classes (as torch.save names them in persistent ids) and their dtypes. */
export const TORCH_STORAGE_DTYPES: Readonly<Record<string, SafetensorsDtype>> = {
  DoubleStorage: "F64",
  FloatStorage: "F32",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  LongStorage: "I64",
  IntStorage: "I32",
  ShortStorage: "I16",
  CharStorage: "I8",
  ByteStorage: "U8",
  BoolStorage: "BOOL",
};

/** Largest data.pkl we will parse. Real checkpoints' pickles are a few MB at most. */
export const MAX_DATA_PKL_BYTES = 256 << 20;

/** A storage as named by a persistent id: ('storage', torch.XStorage, key, location, numel). */
export class TorchStorageRef {
  constructor(
    readonly key: string,
    readonly dtype: SafetensorsDtype,
    readonly location: string,
    readonly numel: number,
  ) {}
}

/** A tensor as described by torch._utils._rebuild_tensor_v2. Nothing is read until asked. */
export class TorchTensorRef {
  constructor(
    readonly storage: TorchStorageRef,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
  /** Tensor subclasses may carry state (BUILD); it does not affect the data, so it is ignored. */
  pickleBuild(): void {}
}

/** Everything known about one tensor of a torch checkpoint. */
export interface TorchTensorInfo extends TensorInfo {
  stride: number[];
  /** In elements, as torch counts it. */
  storageOffset: number;
  /** The zip entry holding the storage, `<top>/data/<key>`. */
  storageEntry: string;
  /** Byte range of the tensor inside the storage entry. */
  byteOffset: number;
  byteLength: number;
}

function badPickle(context: PickleCallContext, why: string): JsdError {
  return new JsdError("JSD_BAD_FILE", `${context.source}: malformed state dict at byte ${context.offset}: ${why}`);
}

function intArg(context: PickleCallContext, value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) throw badPickle(context, `${what} is ${String(value)}, not a non-negative integer`);
  return value;
}

function intTuple(context: PickleCallContext, value: unknown, what: string): number[] {
  if (!isTuple(value) && !Array.isArray(value)) throw badPickle(context, `${what} is a ${describe(value)}, not a tuple`);
  if (value.length > 64) throw badPickle(context, `${what} has ${value.length} dimensions`);
  return value.map((v, i) => intArg(context, v, `${what}[${i}]`));
}

function rebuildTensor(args: readonly unknown[], context: PickleCallContext, fn: string): TorchTensorRef {
  if (args.length < 4) throw badPickle(context, `${fn} called with ${args.length} arguments, expected at least 4`);
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof TorchStorageRef)) throw badPickle(context, `${fn}: the storage argument is a ${describe(storage)}, not a storage`);
  const shape = intTuple(context, size, "tensor size");
  const strides = intTuple(context, stride, "tensor stride");
  if (shape.length !== strides.length) throw badPickle(context, `tensor size ${JSON.stringify(shape)} and stride ${JSON.stringify(strides)} differ in length`);
  return new TorchTensorRef(storage, intArg(context, offset, "storage offset"), shape, strides);
}

const referenceOnly: GlobalHandler = {};

function tensorArg(value: unknown, context: PickleCallContext, fn: string): TorchTensorRef {
  if (!(value instanceof TorchTensorRef)) throw badPickle(context, `${fn}: the data argument is a ${describe(value)}, not a tensor`);
  return value;
}

/**
 * The globals a torch state dict may name. Only these may appear in data.pkl; each "call" builds
 * a plain description and runs nothing. (torch.storage._load_from_bytes, which unpickles nested
 * bytes with torch.load, is deliberately absent.)
 */
export const TORCH_GLOBALS: ReadonlyMap<string, GlobalHandler> = new Map<string, GlobalHandler>([
  [
    "collections.OrderedDict",
    {
      call(args, context) {
        const dict = new PickleDict();
        if (args.length === 0) return dict;
        const items = args[0];
        if (args.length > 1 || !Array.isArray(items)) throw badPickle(context, "OrderedDict takes at most one list of pairs");
        for (const pair of items) {
          if (!Array.isArray(pair) || pair.length !== 2) throw badPickle(context, "OrderedDict item is not a pair");
          dict.set(pair[0], pair[1]);
        }
        return dict;
      },
    },
  ],
  ["torch._utils._rebuild_tensor_v2", { call: (args, context) => rebuildTensor(args, context, "_rebuild_tensor_v2") }],
  ["torch._utils._rebuild_tensor", { call: (args, context) => rebuildTensor(args, context, "_rebuild_tensor") }],
  [
    "torch._utils._rebuild_parameter",
    { call: (args, context) => tensorArg(args[0], context, "_rebuild_parameter") },
  ],
  [
    "torch._utils._rebuild_parameter_with_state",
    { call: (args, context) => tensorArg(args[0], context, "_rebuild_parameter_with_state") },
  ],
  [
    "torch._tensor._rebuild_from_type_v2",
    {
      // _rebuild_from_type_v2(func, new_type, args, state): func(*args), viewed as new_type.
      call(args, context) {
        const [func, newType, funcArgs] = args;
        if (args.length !== 4) throw badPickle(context, `_rebuild_from_type_v2 called with ${args.length} arguments, expected 4`);
        // Only the plain rebuild functions (not _rebuild_from_type_v2 itself: no recursion).
        if (!(func instanceof PickleGlobal) || !func.handler.call || !/^torch\._utils\._rebuild_tensor(_v2)?$/.test(func.qualifiedName)) {
          throw badPickle(context, `_rebuild_from_type_v2: ${describe(func)} is not a tensor rebuild function`);
        }
        if (!(newType instanceof PickleGlobal) || newType.handler !== referenceOnly || !/^torch\.(Tensor|nn\.parameter\.Parameter)$/.test(newType.qualifiedName)) {
          throw badPickle(context, `_rebuild_from_type_v2: ${describe(newType)} is not a tensor type`);
        }
        if (!isTuple(funcArgs)) throw badPickle(context, "_rebuild_from_type_v2: arguments are not a tuple");
        return tensorArg(func.handler.call(funcArgs, context), context, "_rebuild_from_type_v2");
      },
    },
  ],
  ["torch.Tensor", referenceOnly],
  ["torch.nn.parameter.Parameter", referenceOnly],
  ...Object.keys(TORCH_STORAGE_DTYPES).map((name): [string, GlobalHandler] => [`torch.${name}`, referenceOnly]),
]);

function persistentLoad(pid: unknown, context: PickleCallContext): TorchStorageRef {
  if (!isTuple(pid) || pid.length !== 5 || pid[0] !== "storage") {
    throw badPickle(context, `persistent id is a ${describe(pid)}${isTuple(pid) ? ` of ${pid.length}` : ""}, not ('storage', type, key, location, numel)`);
  }
  const [, type, key, location, numel] = pid;
  if (!(type instanceof PickleGlobal) || !(type.module === "torch" && type.name in TORCH_STORAGE_DTYPES)) {
    throw badPickle(context, `persistent id names ${describe(type)}, not a torch storage type`);
  }
  if (typeof key !== "string" || key.length === 0 || key.length > 256) throw badPickle(context, `storage key ${JSON.stringify(key)} is invalid`);
  if (typeof location !== "string") throw badPickle(context, `storage location is a ${describe(location)}`);
  return new TorchStorageRef(key, TORCH_STORAGE_DTYPES[type.name], location, intArg(context, numel, "storage size"));
}

/** Parses a torch data.pkl as data, with the torch allowlist. Returns the unpickled root object. */
export function unpickleTorch(data: Uint8Array, source = "data.pkl"): unknown {
  return unpickle(data, { globals: TORCH_GLOBALS, persistentLoad, source });
}

/** True when a tensor with this shape and stride is laid out contiguously (row-major), as torch's is_contiguous. */
export function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  if (shape.some((d) => d === 0)) return true;
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

// The pickle magic number that starts torch.save's legacy (pre-1.6) format: LONG1 0x1950a86a20f9469cfc6c.
const LEGACY_MAGIC = Uint8Array.from([0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

async function checkNotLegacy(path: string): Promise<void> {
  let head: Buffer;
  try {
    const handle = await open(path, "r");
    try {
      head = Buffer.alloc(512);
      const { bytesRead } = await handle.read(head, 0, 512, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new JsdError("JSD_NOT_FOUND", `cannot open ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) return;
  const legacyPickle = head[0] === 0x80 && Buffer.from(head.subarray(2, 2 + LEGACY_MAGIC.length)).equals(LEGACY_MAGIC);
  const legacyTar = head.length >= 262 && head.subarray(257, 262).toString("latin1") === "ustar";
  if (legacyPickle || legacyTar) {
    throw new JsdError(
      "JSD_BAD_FILE",
      `${path} is in PyTorch's legacy (pre-1.6) ${legacyTar ? "tar" : "pickle"} checkpoint format, which is not supported; ` +
        "re-save it with torch >= 1.6 (torch.save(torch.load(path), new_path)) or convert it to safetensors",
    );
  }
  if (head.length > 0 && head[0] === 0x80) {
    throw new JsdError("JSD_BAD_FILE", `${path} is a bare pickle, not a PyTorch zip checkpoint; only torch.save's zip format (torch >= 1.6) is supported`);
  }
  // Anything else: let the zip reader say what is wrong.
}

interface TensorEntry {
  info: TorchTensorInfo;
  entry: ZipEntry;
}

export class TorchCheckpoint implements CheckpointReader {
  readonly path: string;
  /** The archive's top folder (`archive`, `pytorch_model`, ...). */
  readonly top: string;
  readonly #zip: ZipReader;
  readonly #tensors: ReadonlyMap<string, TensorEntry>;

  private constructor(path: string, zip: ZipReader, top: string, tensors: Map<string, TensorEntry>) {
    this.path = path;
    this.#zip = zip;
    this.top = top;
    this.#tensors = tensors;
  }

  static async open(path: string): Promise<TorchCheckpoint> {
    await checkNotLegacy(path);
    const zip = await ZipReader.open(path);
    try {
      const { top, tensors } = await indexCheckpoint(path, zip);
      return new TorchCheckpoint(path, zip, top, tensors);
    } catch (error) {
      await zip.close();
      throw error;
    }
  }

  names(): string[] {
    return [...this.#tensors.keys()];
  }

  info(name: string): TorchTensorInfo {
    const tensor = this.#tensors.get(name);
    if (!tensor) throw new JsdError("JSD_BAD_FILE", `${this.path} has no tensor '${name}'`);
    return { ...tensor.info, shape: [...tensor.info.shape], stride: [...tensor.info.stride] };
  }

  async read(name: string): Promise<RawTensor> {
    const tensor = this.#tensors.get(name);
    if (!tensor) throw new JsdError("JSD_BAD_FILE", `${this.path} has no tensor '${name}'`);
    const { info, entry } = tensor;
    const data = await this.#zip.read(entry, info.byteOffset, info.byteLength);
    return { name, dtype: info.dtype, shape: [...info.shape], data };
  }

  close(): Promise<void> {
    return this.#zip.close();
  }
}

/** Opens a PyTorch zip checkpoint (`torch.save` >= 1.6). */
export function openTorchCheckpoint(path: string): Promise<TorchCheckpoint> {
  return TorchCheckpoint.open(path);
}

function bad(path: string, why: string): JsdError {
  return new JsdError("JSD_BAD_FILE", `${path} is not a valid PyTorch checkpoint: ${why}`);
}

async function indexCheckpoint(path: string, zip: ZipReader): Promise<{ top: string; tensors: Map<string, TensorEntry> }> {
  const pickles = zip.names().filter((name) => /^[^/]+\/data\.pkl$/.test(name));
  if (pickles.length === 0) {
    throw bad(path, `the archive has no <folder>/data.pkl entry (entries: ${zip.names().slice(0, 5).join(", ") || "none"}${zip.entries.size > 5 ? ", ..." : ""})`);
  }
  if (pickles.length > 1) throw bad(path, `the archive has several data.pkl entries (${pickles.join(", ")})`);
  const pklName = pickles[0];
  const top = pklName.slice(0, -"/data.pkl".length);

  const byteorder = zip.entries.get(`${top}/byteorder`);
  if (byteorder) {
    const order = new TextDecoder().decode(await zip.readEntry(byteorder.name, 16)).trim();
    if (order !== "little") throw bad(path, `the checkpoint was saved with byte order '${order}'; only little-endian checkpoints are supported`);
  }

  const pkl = await zip.readEntry(pklName, MAX_DATA_PKL_BYTES);
  const root = unpickleTorch(pkl, `${path}: ${pklName}`);
  if (!(root instanceof Map)) throw bad(path, `${pklName} holds a ${describe(root)}, not a state dict`);
  const nested = root.get("state_dict");
  const stateDict = nested instanceof Map ? nested : root;

  const tensors = new Map<string, TensorEntry>();
  for (const [key, value] of stateDict) {
    if (!(value instanceof TorchTensorRef)) continue; // e.g. global_step, epoch
    if (typeof key !== "string") throw bad(path, `a tensor is stored under a ${describe(key)} key, not a name`);
    const where = `tensor '${key}'`;
    const { storage, storageOffset, shape, stride } = value;
    const storageEntry = `${top}/data/${storage.key}`;
    const entry = zip.entries.get(storageEntry);
    if (!entry) throw bad(path, `${where} refers to storage '${storage.key}', but the archive has no entry '${storageEntry}'`);
    if (!isContiguous(shape, stride)) {
      throw bad(path, `${where} is not contiguous (shape ${JSON.stringify(shape)}, stride ${JSON.stringify(stride)}); only contiguous tensors are supported — save it with .contiguous()`);
    }
    const itemSize = DTYPE_BYTES[storage.dtype];
    let numel = 1;
    for (const d of shape) numel *= d;
    const byteOffset = storageOffset * itemSize;
    const byteLength = numel * itemSize;
    if (!Number.isSafeInteger(byteOffset + byteLength)) throw bad(path, `${where} has an impossible size (shape ${JSON.stringify(shape)})`);
    if (numel > 0 && storageOffset + numel > storage.numel) {
      throw bad(path, `${where} (offset ${storageOffset}, ${numel} elements) runs past the end of its storage '${storage.key}' (${storage.numel} elements)`);
    }
    if (numel > 0 && byteOffset + byteLength > entry.size) {
      throw bad(path, `${where} (${storage.dtype} ${JSON.stringify(shape)}) needs bytes ${byteOffset}..${byteOffset + byteLength} of '${storageEntry}', but that entry holds only ${entry.size} bytes (truncated storage?)`);
    }
    tensors.set(key, {
      entry,
      info: { dtype: storage.dtype, shape, stride, storageOffset, storageEntry, byteOffset: numel > 0 ? byteOffset : 0, byteLength },
    });
  }
  if (tensors.size === 0) throw bad(path, `${pklName} holds no tensors`);

  // Check every storage entry's local header now (stored, in bounds), so a broken archive fails at open.
  const entries = new Set([...tensors.values()].map((t) => t.entry));
  for (const entry of entries) await zip.dataOffset(entry);
  return { top, tensors };
}
