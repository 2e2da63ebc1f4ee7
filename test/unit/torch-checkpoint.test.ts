// PyTorch zip checkpoints (*.bin / *.ckpt): the fixture pickles must read exactly like their
// safetensors twins, and malformed or hostile archives and pickles must fail with a JsdError
// (JSD_BAD_FILE / JSD_UNSAFE_PICKLE) that names the problem, quickly, without running anything.
// Every hostile input is assembled here byte by byte; no Python is needed.
// Over 400 lines, and one job: one subject's cases, each hostile archive built by hand.
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateRawSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JsdError, type JsdErrorCode } from "../../lib/errors.js";
import { openCheckpoint } from "../../lib/formats/checkpoint.js";
import { unpickle, PickleDict } from "../../lib/formats/pickle.js";
import { readSafetensors } from "../../lib/formats/safetensors.js";
import { isContiguous, openTorchCheckpoint, TorchTensorRef, unpickleTorch } from "../../lib/formats/torch-checkpoint.js";
import { ZipReader } from "../../lib/formats/zip.js";

const FIXTURES = fileURLToPath(new URL("../fixtures", import.meta.url));
const FAST = 5_000; // ms: hostile inputs must fail fast, never hang

// ---------------------------------------------------------------------------------------------
// Pickle assembly

const enc = new TextEncoder();

function concat(parts: (Uint8Array | number[])[]): Uint8Array {
  const arrays = parts.map((p) => (p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

function u32le(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

/** Pickle opcodes, each returning its bytes. */
const op = {
  proto: (v: number) => [0x80, v],
  frame: (n: number) => [0x95, ...u32le(n), 0, 0, 0, 0],
  stop: () => [0x2e],
  mark: () => [0x28],
  emptyDict: () => [0x7d],
  emptyTuple: () => [0x29],
  emptyList: () => [0x5d],
  tuple: () => [0x74],
  tuple1: () => [0x85],
  tuple2: () => [0x86],
  setitems: () => [0x75],
  setitem: () => [0x73],
  append: () => [0x61],
  reduce: () => [0x52],
  build: () => [0x62],
  binpersid: () => [0x51],
  newfalse: () => [0x89],
  none: () => [0x4e],
  binput: (i: number) => [0x71, i],
  binget: (i: number) => [0x68, i],
  longBinput: (i: number) => [0x72, ...u32le(i)],
  binint: (n: number) => [0x4a, ...u32le(n)],
  int: (n: number) => (n < 256 ? [0x4b, n] : n < 65536 ? [0x4d, n & 0xff, n >> 8] : [0x4a, ...u32le(n)]),
  str: (s: string) => {
    const b = enc.encode(s);
    return [0x58, ...u32le(b.length), ...b];
  },
  shortStr: (s: string) => {
    const b = enc.encode(s);
    return [0x8c, b.length, ...b];
  },
  binbytes: (b: Uint8Array) => [0x42, ...u32le(b.length), ...b],
  global: (module: string, name: string) => [0x63, ...enc.encode(`${module}\n${name}\n`)],
  stackGlobal: () => [0x93],
};

function pickle(...ops: number[][]): Uint8Array {
  return Uint8Array.from(ops.flat());
}

interface TensorSpec {
  name: string;
  storage: string; // FloatStorage, HalfStorage, ...
  key: string;
  numel: number; // storage numel
  offset?: number;
  shape: number[];
  stride?: number[];
  /** Wrap the tensor in torch._utils._rebuild_parameter. */
  parameter?: boolean;
}

function contiguousStride(shape: number[]): number[] {
  const stride = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    stride[i] = s;
    s *= shape[i];
  }
  return stride;
}

function intTuple(values: number[]): number[] {
  return [...op.mark(), ...values.flatMap(op.int), ...op.tuple()];
}

/** A torch.save-style state dict pickle (protocol 2), optionally nested under 'state_dict'. */
function stateDictPickle(tensors: TensorSpec[], options: { nested?: boolean } = {}): Uint8Array {
  const body: number[][] = [];
  for (const t of tensors) {
    const rebuild = [
      ...op.global("torch._utils", "_rebuild_tensor_v2"),
      ...op.mark(),
      ...op.mark(),
      ...op.str("storage"),
      ...op.global("torch", t.storage),
      ...op.str(t.key),
      ...op.str("cpu"),
      ...op.int(t.numel),
      ...op.tuple(),
      ...op.binpersid(),
      ...op.int(t.offset ?? 0),
      ...intTuple(t.shape),
      ...intTuple(t.stride ?? contiguousStride(t.shape)),
      ...op.newfalse(),
      ...op.global("collections", "OrderedDict"),
      ...op.emptyTuple(),
      ...op.reduce(),
      ...op.tuple(),
      ...op.reduce(),
    ];
    const value = t.parameter
      ? [...op.global("torch._utils", "_rebuild_parameter"), ...op.mark(), ...rebuild, ...op.newfalse(), ...op.global("collections", "OrderedDict"), ...op.emptyTuple(), ...op.reduce(), ...op.tuple(), ...op.reduce()]
      : rebuild;
    body.push([...op.str(t.name), ...value]);
  }
  const dict = [...op.global("collections", "OrderedDict"), ...op.emptyTuple(), ...op.reduce(), ...op.mark(), ...body.flat(), ...op.setitems()];
  if (!options.nested) return pickle(op.proto(2), dict, op.stop());
  return pickle(op.proto(2), op.emptyDict(), op.mark(), op.str("epoch"), op.int(3), op.str("global_step"), op.int(470000), op.str("state_dict"), dict, op.setitems(), op.stop());
}

// ---------------------------------------------------------------------------------------------
// Stored zip assembly

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface ZipSpec {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
}

interface BuiltZip {
  bytes: Uint8Array;
  /** Offset of the central directory and of each entry's central header. */
  cdOffset: number;
  centralHeaders: number[];
  eocdOffset: number;
}

/** Writes a zip archive by hand: local headers + data, central directory, optional ZIP64 records, EOCD. */
function buildZip(entries: ZipSpec[], options: { zip64?: boolean } = {}): BuiltZip {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  const centralHeaders: number[] = [];
  let offset = 0;
  let cdSize = 0;
  for (const e of entries) {
    const name = enc.encode(e.name);
    const payload = e.deflate ? new Uint8Array(deflateRawSync(e.data)) : e.data;
    const method = e.deflate ? 8 : 0;
    const crc = crc32(e.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(payload.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    parts.push(local, name, payload);
    const header = Buffer.alloc(46);
    header.writeUInt32LE(0x02014b50, 0);
    header.writeUInt16LE(0x031e, 4);
    header.writeUInt16LE(20, 6);
    header.writeUInt16LE(method, 10);
    header.writeUInt32LE(crc, 16);
    header.writeUInt32LE(payload.length, 20);
    header.writeUInt32LE(e.data.length, 24);
    header.writeUInt16LE(name.length, 28);
    header.writeUInt32LE(offset, 42);
    centralHeaders.push(cdSize);
    central.push(header, name);
    cdSize += header.length + name.length;
    offset += local.length + name.length + payload.length;
  }
  const cdOffset = offset;
  const tail: Uint8Array[] = [...central];
  let eocdOffset = cdOffset + cdSize;
  if (options.zip64) {
    const record = Buffer.alloc(56);
    record.writeUInt32LE(0x06064b50, 0);
    record.writeBigUInt64LE(44n, 4);
    record.writeUInt16LE(0x031e, 12);
    record.writeUInt16LE(45, 14);
    record.writeBigUInt64LE(BigInt(entries.length), 24);
    record.writeBigUInt64LE(BigInt(entries.length), 32);
    record.writeBigUInt64LE(BigInt(cdSize), 40);
    record.writeBigUInt64LE(BigInt(cdOffset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(eocdOffset), 8);
    locator.writeUInt32LE(1, 16);
    tail.push(record, locator);
    eocdOffset += 56 + 20;
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  // With ZIP64, saturate the 32-bit fields so that only the ZIP64 record can be used.
  eocd.writeUInt16LE(options.zip64 ? 0xffff : entries.length, 8);
  eocd.writeUInt16LE(options.zip64 ? 0xffff : entries.length, 10);
  eocd.writeUInt32LE(options.zip64 ? 0xffffffff : cdSize, 12);
  eocd.writeUInt32LE(options.zip64 ? 0xffffffff : cdOffset, 16);
  tail.push(eocd);
  return { bytes: concat([...parts, ...tail]), cdOffset, centralHeaders: centralHeaders.map((h) => h + cdOffset), eocdOffset };
}

function f32(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

/** A complete checkpoint archive: `<top>/data.pkl`, `<top>/version`, and the storages. */
function checkpointZip(pkl: Uint8Array, storages: Record<string, Uint8Array>, options: { top?: string; zip64?: boolean; deflatePkl?: boolean } = {}): BuiltZip {
  const top = options.top ?? "archive";
  return buildZip(
    [
      { name: `${top}/data.pkl`, data: pkl, deflate: options.deflatePkl },
      ...Object.entries(storages).map(([key, data]) => ({ name: `${top}/data/${key}`, data })),
      { name: `${top}/version`, data: enc.encode("3\n") },
    ],
    { zip64: options.zip64 },
  );
}

let dir: string;
let counter = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "jsd-torch-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeTemp(bytes: Uint8Array, ext = ".bin"): Promise<string> {
  const path = join(dir, `case-${counter++}${ext}`);
  await writeFile(path, bytes);
  return path;
}

/** Asserts that `fn` throws (or rejects with) a JsdError with this code and a message matching every pattern. */
async function expectJsdError(fn: () => unknown, code: JsdErrorCode, ...patterns: (string | RegExp)[]): Promise<JsdError> {
  let caught: unknown;
  try {
    await fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, "expected an error").toBeInstanceOf(JsdError);
  const error = caught as JsdError;
  expect(error.code, error.message).toBe(code);
  for (const p of patterns) expect(error.message).toMatch(p);
  return error;
}

/** Opens a checkpoint and reads every tensor (so that any lazy error surfaces). */
async function openAndReadAll(path: string): Promise<void> {
  const ckpt = await openCheckpoint(path);
  try {
    for (const name of ckpt.names()) await ckpt.read(name);
  } finally {
    await ckpt.close();
  }
}

// A small valid checkpoint used as the base of most malformed cases.
const W = f32([1, 2, 3, 4, 5, 6]);
const B = f32([0.5, -0.5]);
const BASE_TENSORS: TensorSpec[] = [
  { name: "layer.weight", storage: "FloatStorage", key: "0", numel: 6, shape: [2, 3] },
  { name: "layer.bias", storage: "FloatStorage", key: "1", numel: 2, shape: [2] },
];

// ---------------------------------------------------------------------------------------------

describe("tiny-jsd-bin pickles read like the tiny-jsd safetensors", () => {
  const pairs: [string, string][] = [
    ["text_encoder/pytorch_model.bin", "text_encoder/model.safetensors"],
    ["unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.safetensors"],
    ["vae/diffusion_pytorch_model.bin", "vae/diffusion_pytorch_model.safetensors"],
  ];
  for (const [bin, safetensors] of pairs) {
    it(bin, async () => {
      const expected = (await readSafetensors(join(FIXTURES, "tiny-jsd", safetensors))).tensors;
      const ckpt = await openCheckpoint(join(FIXTURES, "tiny-jsd-bin", bin));
      try {
        expect([...ckpt.names()].sort()).toEqual([...expected.keys()].sort());
        for (const name of ckpt.names()) {
          const want = expected.get(name)!;
          expect(ckpt.info(name), name).toEqual(expect.objectContaining({ dtype: want.dtype, shape: want.shape }));
          const got = await ckpt.read(name);
          expect(got.name).toBe(name);
          expect(got.dtype, name).toBe(want.dtype);
          expect(got.shape, name).toEqual(want.shape);
          expect(Buffer.from(got.data).equals(Buffer.from(want.data)), `bytes of ${name}`).toBe(true);
        }
        if (ckpt.names().includes("text_model.embeddings.position_ids")) {
          // int64 in the pickle; the safetensors twin also stores it as I64 (checked above).
          const ids = await ckpt.read("text_model.embeddings.position_ids");
          expect(ids.dtype).toBe("I64");
          expect(ids.shape).toEqual([1, 77]);
          const values = new BigInt64Array(new Uint8Array(ids.data).buffer);
          expect([...values].map(Number)).toEqual(Array.from({ length: 77 }, (_, i) => i));
        }
      } finally {
        await ckpt.close();
      }
    });
  }

  it("exposes the archive's top folder and each tensor's storage layout", async () => {
    const ckpt = await openTorchCheckpoint(join(FIXTURES, "tiny-jsd-bin/text_encoder/pytorch_model.bin"));
    try {
      expect(ckpt.top).toBe("pytorch_model");
      const info = ckpt.info("text_model.embeddings.token_embedding.weight");
      expect(info).toMatchObject({ dtype: "F32", shape: [8000, 32], stride: [32, 1], storageOffset: 0, byteOffset: 0, byteLength: 8000 * 32 * 4 });
      expect(info.storageEntry).toMatch(/^pytorch_model\/data\/\d+$/);
    } finally {
      await ckpt.close();
    }
  });
});

describe("hand-built checkpoints", () => {
  it("reads F16 / BF16 / I32 tensors, shared storages with offsets, parameters, ZIP64 and a nested state_dict", async () => {
    const half = new Uint8Array([0x00, 0x3c, 0x00, 0x40, 0x00, 0xc0, 0x00, 0x00]); // 1, 2, -2, 0 as f16
    const bf = new Uint8Array([0x80, 0x3f, 0x00, 0x40]); // 1, 2 as bf16
    const shared = f32([10, 11, 12, 13, 14, 15, 16, 17]);
    const ints = new Uint8Array(Int32Array.from([7, -8, 9]).buffer);
    const pkl = stateDictPickle(
      [
        { name: "h", storage: "HalfStorage", key: "0", numel: 4, shape: [2, 2] },
        { name: "b", storage: "BFloat16Storage", key: "1", numel: 2, shape: [2], parameter: true },
        { name: "first", storage: "FloatStorage", key: "2", numel: 8, offset: 0, shape: [2, 2] },
        { name: "second", storage: "FloatStorage", key: "2", numel: 8, offset: 4, shape: [4] },
        { name: "i", storage: "IntStorage", key: "3", numel: 3, shape: [3, 1], stride: [1, 99] }, // size-1 dims may have any stride
        { name: "empty", storage: "FloatStorage", key: "2", numel: 8, offset: 0, shape: [0, 5], stride: [7, 3] },
      ],
      { nested: true },
    );
    const zip = checkpointZip(pkl, { 0: half, 1: bf, 2: shared, 3: ints }, { top: "last", zip64: true });
    const path = await writeTemp(zip.bytes, ".ckpt");
    const ckpt = await openCheckpoint(path);
    try {
      expect(ckpt.names()).toEqual(["h", "b", "first", "second", "i", "empty"]);
      expect(await ckpt.read("h")).toEqual({ name: "h", dtype: "F16", shape: [2, 2], data: half });
      expect(await ckpt.read("b")).toEqual({ name: "b", dtype: "BF16", shape: [2], data: bf });
      expect(await ckpt.read("first")).toEqual({ name: "first", dtype: "F32", shape: [2, 2], data: f32([10, 11, 12, 13]) });
      expect(await ckpt.read("second")).toEqual({ name: "second", dtype: "F32", shape: [4], data: f32([14, 15, 16, 17]) });
      expect(await ckpt.read("i")).toEqual({ name: "i", dtype: "I32", shape: [3, 1], data: ints });
      expect((await ckpt.read("empty")).data.length).toBe(0);
    } finally {
      await ckpt.close();
    }
  });

  it("accepts .bin, .ckpt, .pt and .pth and any top folder name", async () => {
    for (const ext of [".bin", ".ckpt", ".pt", ".PTH"]) {
      const path = await writeTemp(checkpointZip(stateDictPickle(BASE_TENSORS), { 0: W, 1: B }, { top: "pytorch_model" }).bytes, ext);
      const ckpt = await openCheckpoint(path);
      expect(ckpt.names()).toEqual(["layer.weight", "layer.bias"]);
      expect((await ckpt.read("layer.bias")).data).toEqual(B);
      await ckpt.close();
    }
  });

  it(
    "torch._tensor._rebuild_from_type_v2 in its simple form, and not recursively",
    async () => {
      const storage = [...op.mark(), ...op.str("storage"), ...op.global("torch", "FloatStorage"), ...op.str("0"), ...op.str("cpu"), ...op.int(6), ...op.tuple(), ...op.binpersid()];
      const tensorArgs = [...op.mark(), ...storage, ...op.int(0), ...intTuple([2, 3]), ...intTuple([3, 1]), ...op.newfalse(), ...op.global("collections", "OrderedDict"), ...op.emptyTuple(), ...op.reduce(), ...op.tuple()];
      const pkl = pickle(
        op.proto(2),
        op.emptyDict(),
        op.str("w"),
        op.global("torch._tensor", "_rebuild_from_type_v2"),
        op.mark(),
        op.global("torch._utils", "_rebuild_tensor_v2"),
        op.global("torch.nn.parameter", "Parameter"),
        tensorArgs,
        op.emptyDict(),
        op.tuple(),
        op.reduce(),
        op.setitem(),
        op.stop(),
      );
      const ckpt = await openCheckpoint(await writeTemp(checkpointZip(pkl, { 0: W }).bytes));
      expect(await ckpt.read("w")).toEqual({ name: "w", dtype: "F32", shape: [2, 3], data: W });
      await ckpt.close();

      // X(k+1) = (_rebuild_from_type_v2, torch.Tensor, Xk, None), built flat through the memo:
      // interpreting it recursively would overflow the JS stack.
      const depth = 50_000;
      const pop = [0x30];
      const parts: number[][] = [op.proto(2), op.global("torch._tensor", "_rebuild_from_type_v2"), op.binput(0), pop, op.global("torch", "Tensor"), op.binput(1), pop, op.emptyTuple(), op.longBinput(2), pop];
      for (let i = 0; i < depth; i++) parts.push(op.mark(), op.binget(0), op.binget(1), [0x6a, ...u32le(2 + i)], op.none(), op.tuple(), op.longBinput(3 + i), pop);
      parts.push(op.binget(0), [0x6a, ...u32le(2 + depth)], op.reduce(), op.stop());
      const started = Date.now();
      const deep = Uint8Array.from(parts.flat());
      await expectJsdError(() => unpickleTorch(deep), "JSD_BAD_FILE", /global torch\._tensor\._rebuild_from_type_v2 is not a tensor rebuild function/);
      expect(Date.now() - started).toBeLessThan(FAST);
    },
    FAST,
  );

  it("isContiguous follows torch's rules", () => {
    expect(isContiguous([2, 3], [3, 1])).toBe(true);
    expect(isContiguous([2, 3], [1, 2])).toBe(false);
    expect(isContiguous([1, 77], [0, 1])).toBe(true);
    expect(isContiguous([4, 1, 3], [3, 5, 1])).toBe(true);
    expect(isContiguous([3, 4], [0, 1])).toBe(false);
    expect(isContiguous([0, 4], [9, 9])).toBe(true);
    expect(isContiguous([], [])).toBe(true);
  });
});

describe("hostile pickles are refused, never executed", () => {
  const marker = () => join(dir, "PWNED");

  function osSystemPickle(): Uint8Array {
    return pickle(op.proto(2), op.global("os", "system"), op.binput(0), op.str(`touch ${marker()}`), op.tuple1(), op.reduce(), op.stop());
  }

  it(
    "os.system GLOBAL + REDUCE",
    async () => {
      const pkl = osSystemPickle();
      await expectJsdError(() => unpickleTorch(pkl), "JSD_UNSAFE_PICKLE", /'os\.system'/, /at byte 2\b/);
      const path = await writeTemp(checkpointZip(pkl, {}).bytes);
      await expectJsdError(() => openAndReadAll(path), "JSD_UNSAFE_PICKLE", /'os\.system'/, /archive\/data\.pkl/);
      // Give a (hypothetical) spawned shell time to have run, then check nothing happened.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(existsSync(marker())).toBe(false);
    },
    FAST,
  );

  it(
    "posix.system, subprocess.Popen, builtins.getattr and the like",
    async () => {
      for (const [module, name] of [
        ["posix", "system"],
        ["nt", "system"],
        ["subprocess", "Popen"],
        ["builtins", "getattr"],
        ["builtins", "exec"],
        ["__builtin__", "eval"],
        ["torch", "load"],
        ["numpy", "load"],
        ["collections", "OrderedDictX"],
      ]) {
        const pkl = pickle(op.proto(2), op.global(module, name), op.str("x"), op.tuple1(), op.reduce(), op.stop());
        await expectJsdError(() => unpickleTorch(pkl), "JSD_UNSAFE_PICKLE", `'${module}.${name}'`);
      }
    },
    FAST,
  );

  it(
    "builtins.eval via STACK_GLOBAL (protocol 4, framed)",
    async () => {
      const body = pickle(op.shortStr("builtins"), [0x94], op.shortStr("eval"), [0x94], op.stackGlobal(), op.shortStr("__import__('os').system('touch x')"), op.tuple1(), op.reduce(), op.stop());
      const pkl = concat([op.proto(4), op.frame(body.length), body]);
      const error = await expectJsdError(() => unpickleTorch(pkl), "JSD_UNSAFE_PICKLE", /'builtins\.eval'/);
      expect(error.message).toMatch(new RegExp(`at byte ${2 + 9 + 10 + 1 + 6 + 1}\\b`));
      const path = await writeTemp(checkpointZip(pkl, {}).bytes, ".ckpt");
      await expectJsdError(() => openAndReadAll(path), "JSD_UNSAFE_PICKLE", /'builtins\.eval'/);
    },
    FAST,
  );

  it(
    "torch.storage._load_from_bytes (which would torch.load nested bytes)",
    async () => {
      const nested = osSystemPickle();
      const pkl = pickle(op.proto(2), op.global("torch.storage", "_load_from_bytes"), op.binbytes(nested), op.tuple1(), op.reduce(), op.stop());
      await expectJsdError(() => unpickleTorch(pkl), "JSD_UNSAFE_PICKLE", /'torch\.storage\._load_from_bytes'/, /at byte 2\b/);
      // Also when it hides inside an otherwise valid state dict, as a tensor's storage.
      const evil = pickle(
        op.proto(2),
        op.global("collections", "OrderedDict"),
        op.emptyTuple(),
        op.reduce(),
        op.str("w"),
        op.global("torch._utils", "_rebuild_tensor_v2"),
        op.mark(),
        op.global("torch.storage", "_load_from_bytes"),
        op.binbytes(nested),
        op.tuple1(),
        op.reduce(),
        op.int(0),
        intTuple([1]),
        intTuple([1]),
        op.newfalse(),
        op.global("collections", "OrderedDict"),
        op.emptyTuple(),
        op.reduce(),
        op.tuple(),
        op.reduce(),
        op.setitem(),
        op.stop(),
      );
      const path = await writeTemp(checkpointZip(evil, {}).bytes);
      await expectJsdError(() => openAndReadAll(path), "JSD_UNSAFE_PICKLE", /'torch\.storage\._load_from_bytes'/);
      expect(existsSync(marker())).toBe(false);
    },
    FAST,
  );

  it(
    "unknown and code-only opcodes",
    async () => {
      await expectJsdError(() => unpickleTorch(pickle(op.proto(2), op.none(), [0xff], op.stop())), "JSD_UNSAFE_PICKLE", /unknown opcode 0xff/, /at byte 3\b/);
      await expectJsdError(() => unpickleTorch(pickle(op.proto(2), [0xd0], op.stop())), "JSD_UNSAFE_PICKLE", /unknown opcode 0xd0/, /at byte 2\b/);
      // INST / OBJ / NEWOBJ instantiate classes; EXT* look up the extension registry.
      await expectJsdError(() => unpickleTorch(pickle(op.mark(), [0x69, ...enc.encode("os\nsystem\n")], op.stop())), "JSD_UNSAFE_PICKLE", /INST/, /at byte 1\b/);
      await expectJsdError(() => unpickleTorch(pickle(op.mark(), op.global("collections", "OrderedDict"), [0x6f], op.stop())), "JSD_UNSAFE_PICKLE", /OBJ/);
      await expectJsdError(() => unpickleTorch(pickle(op.proto(2), op.global("collections", "OrderedDict"), op.emptyTuple(), [0x81], op.stop())), "JSD_UNSAFE_PICKLE", /NEWOBJ/);
      await expectJsdError(() => unpickleTorch(pickle(op.proto(2), [0x82, 1], op.stop())), "JSD_UNSAFE_PICKLE", /EXT1/);
      const path = await writeTemp(checkpointZip(pickle(op.proto(2), [0xff], op.stop()), {}).bytes);
      await expectJsdError(() => openAndReadAll(path), "JSD_UNSAFE_PICKLE", /unknown opcode 0xff/);
    },
    FAST,
  );

  it(
    "allowlisted globals cannot be misused",
    async () => {
      // A storage type is a name, not a callable.
      await expectJsdError(() => unpickleTorch(pickle(op.proto(2), op.global("torch", "FloatStorage"), op.int(4), op.tuple1(), op.reduce(), op.stop())), "JSD_UNSAFE_PICKLE", /'torch\.FloatStorage' may not be called/);
      // REDUCE on something that is not a global at all.
      await expectJsdError(() => unpickleTorch(pickle(op.proto(2), op.str("os.system"), op.emptyTuple(), op.reduce(), op.stop())), "JSD_UNSAFE_PICKLE", /REDUCE calls a str/);
      // No globals at all when none are allowlisted.
      await expectJsdError(() => unpickle(pickle(op.proto(2), op.global("collections", "OrderedDict"), op.stop())), "JSD_UNSAFE_PICKLE", /'collections\.OrderedDict' is not allowed/);
      // Persistent ids only where the caller resolves them.
      await expectJsdError(() => unpickle(pickle(op.proto(2), op.str("x"), op.binpersid(), op.stop())), "JSD_UNSAFE_PICKLE", /BINPERSID/);
      // BUILD on a global (setting attributes on a class).
      await expectJsdError(() => unpickleTorch(pickle(op.proto(2), op.global("torch", "Tensor"), op.emptyDict(), op.build(), op.stop())), "JSD_UNSAFE_PICKLE", /BUILD on a global torch\.Tensor/);
    },
    FAST,
  );
});

describe("malformed pickles", () => {
  it(
    "a truncated pickle, at every length",
    async () => {
      const full = stateDictPickle(BASE_TENSORS);
      expect(unpickleTorch(full)).toBeInstanceOf(PickleDict);
      for (let length = 0; length < full.length; length++) {
        await expectJsdError(() => unpickleTorch(full.subarray(0, length)), "JSD_BAD_FILE");
      }
      await expectJsdError(() => unpickleTorch(full.subarray(0, full.length - 1)), "JSD_BAD_FILE", /without a STOP opcode \(truncated\?\)/);
      await expectJsdError(() => unpickleTorch(full.subarray(0, 40)), "JSD_BAD_FILE", /truncated/);
      const path = await writeTemp(checkpointZip(full.subarray(0, full.length >> 1), { 0: W, 1: B }).bytes);
      await expectJsdError(() => openAndReadAll(path), "JSD_BAD_FILE", /data\.pkl/, /truncated/);
    },
    FAST,
  );

  it(
    "lengths that claim more than the pickle holds allocate nothing and fail fast",
    async () => {
      await expectJsdError(() => unpickle(pickle(op.proto(2), [0x58, 0xff, 0xff, 0xff, 0xff], op.stop())), "JSD_BAD_FILE", /truncated/);
      await expectJsdError(() => unpickle(pickle(op.proto(4), [0x8d, 0, 0, 0, 0, 0, 0, 0, 0x40], op.stop())), "JSD_BAD_FILE", /runs past the end/);
      await expectJsdError(() => unpickle(pickle(op.proto(4), op.frame(0x7fffffff), op.stop())), "JSD_BAD_FILE", /runs past the end/);
      await expectJsdError(() => unpickle(pickle(op.proto(2), [0x8b, 0xff, 0xff, 0xff, 0x7f], op.stop())), "JSD_BAD_FILE", /LONG4/);
      await expectJsdError(() => unpickle(pickle(op.proto(2), op.binget(7), op.stop())), "JSD_BAD_FILE", /memo has no entry 7/);
      await expectJsdError(() => unpickle(pickle(op.proto(2), op.tuple1(), op.stop())), "JSD_BAD_FILE", /stack underflow/);
      await expectJsdError(() => unpickle(pickle(op.proto(2), op.tuple(), op.stop())), "JSD_BAD_FILE", /no MARK/);
      await expectJsdError(() => unpickle(pickle(op.proto(2), op.none(), op.none(), op.stop())), "JSD_BAD_FILE", /STOP with 2 values/);
      await expectJsdError(() => unpickle(pickle(op.proto(2), op.none(), op.str("k"), op.none(), op.setitem(), op.stop())), "JSD_BAD_FILE", /SETITEM\(S\) on a None/);
      await expectJsdError(() => unpickle(pickle(op.proto(2), op.emptyTuple(), op.none(), op.append(), op.stop())), "JSD_BAD_FILE", /APPEND\(S\) on a tuple/);
      await expectJsdError(() => unpickle(pickle(op.proto(2), [0x58, 2, 0, 0, 0, 0xc3, 0x28], op.stop())), "JSD_BAD_FILE", /UTF-8/);
      await expectJsdError(() => unpickle(pickle(op.proto(9), op.none(), op.stop())), "JSD_BAD_FILE", /protocol 9/);
      // A GLOBAL line that never ends.
      await expectJsdError(() => unpickle(Uint8Array.from([0x63, ...new Array(100_000).fill(0x61)])), "JSD_BAD_FILE", /longer than/);
    },
    FAST,
  );

  it(
    "stack, mark and memo limits bound memory",
    async () => {
      const many = (count: number, bytes: number[]) => Uint8Array.from({ length: count * bytes.length }, (_, i) => bytes[i % bytes.length]);
      await expectJsdError(() => unpickle(concat([[0x80, 2], many(100, [0x4e])]), { limits: { maxStack: 50 } }), "JSD_BAD_FILE", /stack holds more than 50/);
      await expectJsdError(() => unpickle(concat([[0x80, 2], many(100, [0x28])]), { limits: { maxMarks: 50 } }), "JSD_BAD_FILE", /more than 50 nested MARKs/);
      await expectJsdError(() => unpickle(concat([[0x80, 2, 0x4e], many(100, [0x94])]), { limits: { maxMemo: 50 } }), "JSD_BAD_FILE", /memo holds more than 50/);
      // Defaults: a million DUPs is refused well before memory runs out.
      await expectJsdError(() => unpickle(concat([[0x80, 2, 0x4e], many(1_100_000, [0x32]), [0x2e]])), "JSD_BAD_FILE", /stack holds more than/);
    },
    FAST,
  );

  it(
    "state-dict shapes that make no sense",
    async () => {
      const rebuild = (...args: number[][]) =>
        pickle(op.proto(2), op.global("collections", "OrderedDict"), op.emptyTuple(), op.reduce(), op.str("w"), op.global("torch._utils", "_rebuild_tensor_v2"), op.mark(), ...args, op.tuple(), op.reduce(), op.setitem(), op.stop());
      const storage = [...op.mark(), ...op.str("storage"), ...op.global("torch", "FloatStorage"), ...op.str("0"), ...op.str("cpu"), ...op.int(4), ...op.tuple(), ...op.binpersid()];
      await expectJsdError(() => unpickleTorch(rebuild(op.str("not a storage"), op.int(0), intTuple([4]), intTuple([1]))), "JSD_BAD_FILE", /not a storage/);
      await expectJsdError(() => unpickleTorch(rebuild(storage, op.int(0), intTuple([4, 1]), intTuple([1]))), "JSD_BAD_FILE", /differ in length/);
      await expectJsdError(() => unpickleTorch(rebuild(storage, op.binint(-1), intTuple([4]), intTuple([1]))), "JSD_BAD_FILE", /storage offset is -1/);
      await expectJsdError(() => unpickleTorch(rebuild(storage)), "JSD_BAD_FILE", /1 arguments/);
      const badPid = [...op.mark(), ...op.str("storage"), ...op.global("torch", "Tensor"), ...op.str("0"), ...op.str("cpu"), ...op.int(4), ...op.tuple(), ...op.binpersid()];
      await expectJsdError(() => unpickleTorch(rebuild(badPid, op.int(0), intTuple([4]), intTuple([1]))), "JSD_BAD_FILE", /not a torch storage type/);
      // A pickle of a list, not a dict.
      const path = await writeTemp(checkpointZip(pickle(op.proto(2), op.emptyList(), op.stop()), {}).bytes);
      await expectJsdError(() => openAndReadAll(path), "JSD_BAD_FILE", /holds a list, not a state dict/);
      const empty = await writeTemp(checkpointZip(pickle(op.proto(2), op.emptyDict(), op.stop()), {}).bytes);
      await expectJsdError(() => openAndReadAll(empty), "JSD_BAD_FILE", /holds no tensors/);
    },
    FAST,
  );
});

describe("malformed archives", () => {
  it(
    "a zip without data.pkl",
    async () => {
      const zip = buildZip([
        { name: "archive/data/0", data: W },
        { name: "archive/version", data: enc.encode("3\n") },
      ]);
      await expectJsdError(async () => openAndReadAll(await writeTemp(zip.bytes)), "JSD_BAD_FILE", /no <folder>\/data\.pkl/);
    },
    FAST,
  );

  it(
    "a zip truncated in the central directory",
    async () => {
      const zip = checkpointZip(stateDictPickle(BASE_TENSORS), { 0: W, 1: B });
      // Cut in the middle of the central directory: no end record remains.
      const cut = await writeTemp(zip.bytes.subarray(0, zip.centralHeaders[1] + 10));
      await expectJsdError(() => openAndReadAll(cut), "JSD_BAD_FILE", /no end of central directory record/);
      // End record intact, but the directory it points to is shorter than it says.
      const bytes = zip.bytes.slice();
      const view = new DataView(bytes.buffer);
      view.setUint16(zip.eocdOffset + 8, 9, true);
      view.setUint16(zip.eocdOffset + 10, 9, true);
      await expectJsdError(async () => openAndReadAll(await writeTemp(bytes)), "JSD_BAD_FILE", /central directory/, /too small for 9 entries|cut short/);
      // A central directory that claims to extend past its end record.
      const long = zip.bytes.slice();
      new DataView(long.buffer).setUint32(zip.eocdOffset + 12, 1_000_000, true);
      await expectJsdError(async () => openAndReadAll(await writeTemp(long)), "JSD_BAD_FILE", /runs past its end record/);
      // A corrupt central header signature.
      const sig = zip.bytes.slice();
      sig[zip.centralHeaders[2]] = 0;
      await expectJsdError(async () => openAndReadAll(await writeTemp(sig)), "JSD_BAD_FILE", /entry 2 .* bad signature/);
    },
    FAST,
  );

  it(
    "a zip whose entry offset points past the end",
    async () => {
      const zip = checkpointZip(stateDictPickle(BASE_TENSORS), { 0: W, 1: B });
      const bytes = zip.bytes.slice();
      new DataView(bytes.buffer).setUint32(zip.centralHeaders[1] + 42, 0x7fff0000, true);
      await expectJsdError(async () => openAndReadAll(await writeTemp(bytes)), "JSD_BAD_FILE", /archive\/data\/0/, /points past the data area/);
      // A size that runs past the end.
      const big = zip.bytes.slice();
      new DataView(big.buffer).setUint32(zip.centralHeaders[2] + 20, 1 << 30, true);
      new DataView(big.buffer).setUint32(zip.centralHeaders[2] + 24, 1 << 30, true);
      await expectJsdError(async () => openAndReadAll(await writeTemp(big)), "JSD_BAD_FILE", /archive\/data\/1/, /points past/);
      // An offset that lands on something that is not a local header.
      const wrong = zip.bytes.slice();
      new DataView(wrong.buffer).setUint32(zip.centralHeaders[1] + 42, 3, true);
      await expectJsdError(async () => openAndReadAll(await writeTemp(wrong)), "JSD_BAD_FILE", /no local header signature at byte 3/);
    },
    FAST,
  );

  it(
    "a storage entry shorter than the tensor needs",
    async () => {
      const path = await writeTemp(checkpointZip(stateDictPickle(BASE_TENSORS), { 0: W.subarray(0, 16), 1: B }).bytes);
      await expectJsdError(() => openAndReadAll(path), "JSD_BAD_FILE", /'layer\.weight'/, /holds only 16 bytes/);
      // A tensor that runs past the end of its storage as the pickle declares it.
      const past = stateDictPickle([{ name: "v", storage: "FloatStorage", key: "0", numel: 6, offset: 4, shape: [3] }]);
      await expectJsdError(async () => openAndReadAll(await writeTemp(checkpointZip(past, { 0: W }).bytes)), "JSD_BAD_FILE", /'v'/, /runs past the end of its storage/);
      // A storage that is missing altogether.
      await expectJsdError(async () => openAndReadAll(await writeTemp(checkpointZip(stateDictPickle(BASE_TENSORS), { 0: W }).bytes)), "JSD_BAD_FILE", /'layer\.bias'/, /no entry 'archive\/data\/1'/);
    },
    FAST,
  );

  it(
    "a non-contiguous stride",
    async () => {
      const pkl = stateDictPickle([{ name: "proj.weight", storage: "FloatStorage", key: "0", numel: 6, shape: [2, 3], stride: [1, 2] }]);
      const path = await writeTemp(checkpointZip(pkl, { 0: W }).bytes);
      await expectJsdError(() => openAndReadAll(path), "JSD_BAD_FILE", /'proj\.weight'/, /not contiguous/, /stride \[1,2\]/);
    },
    FAST,
  );

  it(
    "a compressed (deflate) entry",
    async () => {
      const path = await writeTemp(checkpointZip(stateDictPickle(BASE_TENSORS), { 0: W, 1: B }, { deflatePkl: true }).bytes);
      await expectJsdError(() => openAndReadAll(path), "JSD_BAD_FILE", /'archive\/data\.pkl'/, /compressed \(deflate\)/);
      const storage = buildZip([
        { name: "archive/data.pkl", data: stateDictPickle(BASE_TENSORS) },
        { name: "archive/data/0", data: W, deflate: true },
        { name: "archive/data/1", data: B },
      ]);
      await expectJsdError(async () => openAndReadAll(await writeTemp(storage.bytes)), "JSD_BAD_FILE", /'archive\/data\/0'/, /compressed \(deflate\)/);
    },
    FAST,
  );

  it(
    "legacy (pre-1.6) checkpoints, bare pickles and non-zip files",
    async () => {
      const legacy = pickle(op.proto(2), [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19], op.stop());
      await expectJsdError(async () => openAndReadAll(await writeTemp(legacy)), "JSD_BAD_FILE", /legacy \(pre-1\.6\)/);
      await expectJsdError(async () => openAndReadAll(await writeTemp(stateDictPickle(BASE_TENSORS), ".pt")), "JSD_BAD_FILE", /bare pickle/);
      await expectJsdError(async () => openAndReadAll(await writeTemp(enc.encode("hello, world"))), "JSD_BAD_FILE", /not a valid zip archive/);
      await expectJsdError(async () => openAndReadAll(await writeTemp(new Uint8Array(0))), "JSD_BAD_FILE", /too short/);
      await expectJsdError(() => openAndReadAll(join(dir, "missing.bin")), "JSD_NOT_FOUND");
    },
    FAST,
  );

  it(
    "big-endian checkpoints",
    async () => {
      const zip = buildZip([
        { name: "archive/data.pkl", data: stateDictPickle(BASE_TENSORS) },
        { name: "archive/byteorder", data: enc.encode("big") },
        { name: "archive/data/0", data: W },
        { name: "archive/data/1", data: B },
      ]);
      await expectJsdError(async () => openAndReadAll(await writeTemp(zip.bytes)), "JSD_BAD_FILE", /byte order 'big'/);
    },
    FAST,
  );
});

describe("fuzzing", () => {
  // Deterministic xorshift so failures reproduce.
  function rng(seed: number): () => number {
    let s = seed >>> 0 || 1;
    return () => {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s / 0x100000000;
    };
  }

  it(
    "mutated pickles either parse or fail with a JsdError",
    () => {
      const base = stateDictPickle(BASE_TENSORS, { nested: true });
      const random = rng(1234);
      for (let i = 0; i < 3000; i++) {
        const bytes = base.slice();
        const flips = 1 + Math.floor(random() * 4);
        for (let k = 0; k < flips; k++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
        try {
          unpickleTorch(bytes);
        } catch (error) {
          if (!(error instanceof JsdError)) throw new Error(`case ${i}: ${String(error)}`, { cause: error });
        }
      }
    },
    20_000,
  );

  it(
    "mutated archives either open or fail with a JsdError",
    async () => {
      const base = checkpointZip(stateDictPickle(BASE_TENSORS), { 0: W, 1: B }, { zip64: true }).bytes;
      const random = rng(99);
      const path = join(dir, "fuzz.bin");
      for (let i = 0; i < 300; i++) {
        const bytes = base.slice();
        // Mutate mostly the headers and directory (the start and the tail), where the structure is.
        const flips = 1 + Math.floor(random() * 3);
        for (let k = 0; k < flips; k++) {
          const at = random() < 0.5 ? Math.floor(random() * 64) : bytes.length - 1 - Math.floor(random() * 300);
          bytes[Math.max(0, at)] = Math.floor(random() * 256);
        }
        const cut = random() < 0.1 ? Math.floor(random() * bytes.length) : bytes.length;
        await writeFile(path, bytes.subarray(0, cut));
        try {
          await openAndReadAll(path);
        } catch (error) {
          if (!(error instanceof JsdError)) throw new Error(`case ${i}: ${String(error)}`, { cause: error });
        }
      }
    },
    30_000,
  );
});

describe("ZipReader", () => {
  it("reads stored entries in place, by range", async () => {
    const zip = buildZip([
      { name: "a.txt", data: enc.encode("hello") },
      { name: "dir/b", data: W },
    ]);
    const reader = await ZipReader.open(await writeTemp(zip.bytes, ".zip"));
    try {
      expect(reader.names()).toEqual(["a.txt", "dir/b"]);
      const b = reader.entries.get("dir/b")!;
      expect(await reader.read(b, 4, 8)).toEqual(W.subarray(4, 12));
      await expectJsdError(() => reader.read(b, 20, 8), "JSD_BAD_FILE", /outside entry 'dir\/b'/);
      await expectJsdError(() => reader.readEntry("a.txt", 2), "JSD_BAD_FILE", /over the 2-byte limit/);
    } finally {
      await reader.close();
    }
    await expectJsdError(() => reader.read(reader.entries.get("a.txt")!), "JSD_CLOSED");
  });

  it("TorchTensorRef is what _rebuild_tensor_v2 yields", () => {
    const root = unpickleTorch(stateDictPickle(BASE_TENSORS)) as PickleDict;
    const w = root.get("layer.weight") as TorchTensorRef;
    expect(w).toBeInstanceOf(TorchTensorRef);
    expect(w.shape).toEqual([2, 3]);
    expect(w.stride).toEqual([3, 1]);
    expect(w.storage).toMatchObject({ key: "0", dtype: "F32", location: "cpu", numel: 6 });
  });
});
