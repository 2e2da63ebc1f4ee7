// GGUF writer/reader: round trips, the exact byte layout, and the reader's rejection of malformed files.
// Pure TypeScript; the type table checked against ggml's own is in native/gguf-type-traits.test.ts.
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GgufFile } from "../../lib/formats/gguf-reader.js";
import { GgufWriter, encodeGgufHeader, gguf, type GgufTensorSpec, type GgufValue } from "../../lib/formats/gguf-writer.js";
import { MODEL_KEYS } from "../../lib/formats/model-keys.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "jsd-gguf-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const SHA_KEY = MODEL_KEYS.dataSha256;

function bytesOf(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const metadata: Array<[string, GgufValue]> = [
  ["general.architecture", gguf.str("jsd")],
  ["general.alignment", gguf.u32(32)],
  ["t.u8", { type: "u8", value: 200 }],
  ["t.i8", { type: "i8", value: -100 }],
  ["t.u16", { type: "u16", value: 65535 }],
  ["t.i16", { type: "i16", value: -32768 }],
  ["t.u32", gguf.u32(4000000000)],
  ["t.i32", gguf.i32(-2000000000)],
  ["t.f32", gguf.f32(0.5)],
  ["t.f64", gguf.f64(1e-300)],
  ["t.u64", gguf.u64(2n ** 63n + 5n)],
  ["t.i64", gguf.i64(-(2n ** 62n))],
  ["t.bool", gguf.bool(true)],
  ["t.string", gguf.str("日本語 text ✓")],
  ["t.empty", gguf.str("")],
  ["t.bytes", gguf.bytes(bytesOf(1001, 7))],
  ["t.u32s", gguf.u32s([320, 640, 1280, 1280])],
  ["t.i32s", gguf.i32s([-1, 0, 1])],
  ["t.f32s", gguf.f32s([0.25, -2])],
  ["t.strs", gguf.strs(["CrossAttnDownBlock2D", "", "ユー"])],
  ["t.bools", { type: "array", itemType: "bool", value: [true, false] }],
  ["t.u64s", { type: "array", itemType: "u64", value: [1n, 2n ** 40n] }],
  ["t.empty_array", gguf.u32s([])],
  [SHA_KEY, gguf.str("0".repeat(64))],
];

// f32 [3] (12 bytes: padded), q8_0 [64, 2] (4 blocks of 34 bytes), f16 [3, 3, 2, 5] (4-D), f32 [1]
const tensors: Array<GgufTensorSpec & { data: Uint8Array }> = [
  { name: "a.bias", ne: [3], ggmlType: 0, nbytes: 12 },
  { name: "b.weight", ne: [64, 2], ggmlType: 8, nbytes: 4 * 34 },
  { name: "c.conv.weight", ne: [3, 3, 2, 5], ggmlType: 1, nbytes: 90 * 2 },
  { name: "d", ne: [1], ggmlType: 0, nbytes: 4 },
].map((t, i) => ({ ...t, data: bytesOf(t.nbytes, 100 + i) }));

async function writeSample(path: string, meta = metadata, specs = tensors): Promise<{ size: number; dataSha256: string }> {
  const writer = await GgufWriter.create(path, meta, specs, { sha256Key: SHA_KEY });
  for (const t of specs) await writer.writeTensor(t.data);
  return writer.finish();
}

async function expectBad(path: string, message?: RegExp): Promise<void> {
  const promise = GgufFile.open(path);
  await expect(promise).rejects.toMatchObject({ code: "JSD_BAD_FILE" });
  if (message) await expect(GgufFile.open(path)).rejects.toThrow(message);
}

describe("GGUF writer and reader", () => {
  it("round-trips metadata of every type, tensor infos and tensor bytes", async () => {
    const path = join(dir, "roundtrip.gguf");
    const result = await writeSample(path);
    const file = await GgufFile.open(path);
    try {
      expect(file.version).toBe(3);
      expect(file.alignment).toBe(32);
      expect(file.dataOffset % 32).toBe(0);
      expect(file.fileSize).toBe(result.size);
      // every tensor padded to 32 bytes, the last one included
      expect(file.dataSize).toBe(32 + 160 + 192 + 32);
      expect(file.fileSize).toBe(file.dataOffset + file.dataSize);
      expect([...file.metadata.keys()]).toEqual(metadata.map(([k]) => k));
      for (const [key, value] of metadata) {
        if (key === SHA_KEY) continue;
        const got = file.metadata.get(key)!;
        if (value.type === "f32") expect(got).toEqual({ type: "f32", value: Math.fround(value.value) });
        else if (value.type === "array" && value.itemType === "f32") expect(got).toEqual({ ...value, value: value.value.map(Math.fround) });
        else expect(got).toEqual(value);
      }
      expect(file.getString(SHA_KEY)).toBe(result.dataSha256);
      expect(await file.computeDataSha256()).toBe(result.dataSha256);
      expect(file.tensors.map((t) => [t.name, t.ne, t.ggmlType, t.nbytes])).toEqual(tensors.map((t) => [t.name, t.ne, t.ggmlType, t.nbytes]));
      expect(file.tensors.map((t) => t.offset)).toEqual([0, 32, 192, 384]);
      expect(file.tensor("b.weight")!.typeName).toBe("q8_0");
      for (const t of tensors) expect(await file.readTensor(t.name)).toEqual(t.data);
      // the checksum covers the whole data section, padding included
      const bytes = await readFile(path);
      expect(createHash("sha256").update(bytes.subarray(file.dataOffset)).digest("hex")).toBe(result.dataSha256);
    } finally {
      await file.close();
    }
  });

  it("writes exactly the GGUF v3 byte layout", () => {
    const { header } = encodeGgufHeader([["k", gguf.u32(7)]], [{ name: "w", ne: [2, 3], ggmlType: 1, nbytes: 12 }]);
    const expected = Buffer.concat([
      Buffer.from("GGUF"),
      Buffer.from([3, 0, 0, 0]), // version u32
      Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), // tensor count i64
      Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), // kv count i64
      Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("k"), // key
      Buffer.from([4, 0, 0, 0]), // GGUF_TYPE_UINT32
      Buffer.from([7, 0, 0, 0]),
      Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("w"), // tensor name
      Buffer.from([2, 0, 0, 0]), // n_dims u32
      Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]), // ne i64
      Buffer.from([1, 0, 0, 0]), // GGML_TYPE_F16
      Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]), // offset u64
    ]);
    expect(header.length).toBe(96); // 78 bytes padded to 32
    expect(header.subarray(0, expected.length)).toEqual(expected);
    expect(header.subarray(expected.length).every((b) => b === 0)).toBe(true);
  });

  it("checks what it is given", async () => {
    const path = join(dir, "checks.gguf");
    const long = "x".repeat(64);
    await expect(GgufWriter.create(path, [], [{ name: long, ne: [1], ggmlType: 0, nbytes: 4 }])).rejects.toThrow(/at most 63/);
    await expect(GgufWriter.create(path, [], [tensors[0], tensors[0]])).rejects.toThrow(/duplicate tensor/);
    await expect(GgufWriter.create(path, [["a", gguf.u32(1)], ["a", gguf.u32(2)]], [])).rejects.toThrow(/duplicate GGUF key/);
    await expect(GgufWriter.create(path, [["a", gguf.u32(-1)]], [])).rejects.toThrow(/not a valid u32/);
    await expect(GgufWriter.create(path, [["a", gguf.str("short")]], [], { sha256Key: "a" })).rejects.toThrow(/64-character placeholder/);
    await expect(GgufWriter.create(path, [["general.alignment", gguf.u32(24)]], [])).rejects.toThrow(/power of two/);

    const writer = await GgufWriter.create(path, metadata, tensors, { sha256Key: SHA_KEY });
    await expect(writer.writeTensor(new Uint8Array(5))).rejects.toThrow(/declared with 12 bytes/);
    await writer.writeTensor(tensors[0].data);
    await expect(writer.finish()).rejects.toThrow(/only 1 of 4/);
    await writer.abort();
    await expect(GgufWriter.create(path, metadata, tensors)).rejects.toMatchObject({ code: "JSD_EXISTS" });
  });

  it("reads a file without tensors", async () => {
    const path = join(dir, "empty.gguf");
    await writeSample(path, metadata, []);
    const file = await GgufFile.open(path);
    expect(file.tensors).toEqual([]);
    expect(file.getNumber("t.u32")).toBe(4000000000);
    await file.close();
  });
});

describe("GGUF reader rejects malformed files", () => {
  let good: Buffer;
  let headerEnd: number;
  beforeAll(async () => {
    const path = join(dir, "good.gguf");
    await writeSample(path);
    good = await readFile(path);
    const f = await GgufFile.open(path);
    headerEnd = f.dataOffset;
    await f.close();
  });

  async function variant(name: string, bytes: Uint8Array): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, bytes);
    return path;
  }

  /** A header with one KV or tensor written by hand after the fixed part. */
  function header(nTensors: bigint, nKv: bigint, ...rest: Buffer[]): Buffer {
    const fixed = Buffer.alloc(24);
    fixed.write("GGUF", 0, "latin1");
    fixed.writeUInt32LE(3, 4);
    fixed.writeBigInt64LE(nTensors, 8);
    fixed.writeBigInt64LE(nKv, 16);
    return Buffer.concat([fixed, ...rest, Buffer.alloc(4096)]);
  }
  const str = (s: string) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(Buffer.byteLength(s)));
    return Buffer.concat([b, Buffer.from(s)]);
  };
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return b;
  };
  const i32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    return b;
  };
  const u64 = (v: bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    return b;
  };

  it("wrong magic", async () => {
    const bytes = Buffer.from(good);
    bytes.write("GGML", 0, "latin1");
    await expectBad(await variant("magic.gguf", bytes), /bad magic/);
    await expectBad(await variant("tiny.gguf", Buffer.from("GG")), /2 bytes long/);
    await expectBad(await variant("empty0.gguf", Buffer.alloc(0)));
    await expectBad(dir, /not a regular file/);
    await expect(GgufFile.open(join(dir, "missing.gguf"))).rejects.toMatchObject({ code: "JSD_NOT_FOUND" });
  });

  it("unsupported version", async () => {
    for (const v of [0, 1, 4, 0x03000000]) {
      const bytes = Buffer.from(good);
      bytes.writeUInt32LE(v, 4);
      await expectBad(await variant(`version${v}.gguf`, bytes), /unsupported GGUF version/);
    }
  });

  it("truncated anywhere in the header", async () => {
    const cuts = new Set<number>([0, 3, 4, 7, 8, 15, 16, 23, 24, 30, headerEnd - 1, headerEnd - 40]);
    for (let c = 24; c < headerEnd; c += 97) cuts.add(c);
    for (const cut of cuts) {
      await expectBad(await variant("cut.gguf", good.subarray(0, cut)));
    }
  });

  it("truncated in the tensor data", async () => {
    for (const cut of [headerEnd, headerEnd + 10, good.length - 1]) {
      await expectBad(await variant("cutdata.gguf", good.subarray(0, cut)), /truncated/);
    }
  });

  it("absurd counts and lengths", async () => {
    await expectBad(await variant("ntensors.gguf", header(2n ** 62n, 0n)), /tensor count/);
    await expectBad(await variant("ntensors-neg.gguf", header(-1n, 0n)), /tensor count/);
    await expectBad(await variant("nkv.gguf", header(0n, 2n ** 40n)), /KV count/);
    await expectBad(await variant("keylen.gguf", header(0n, 1n, u64(2n ** 60n))), /string length/);
    await expectBad(await variant("strlen.gguf", header(0n, 1n, str("k"), i32(8), u64(2n ** 50n))), /string length/);
    await expectBad(await variant("arrlen.gguf", header(0n, 1n, str("k"), i32(9), i32(4), u64(2n ** 61n))), /length of array/);
    await expectBad(await variant("strarr.gguf", header(0n, 1n, str("k"), i32(9), i32(8), u64(2n ** 40n))), /length of array/);
    await expectBad(await variant("valtype.gguf", header(0n, 1n, str("k"), i32(99))), /unknown GGUF value type 99/);
    await expectBad(await variant("arrarr.gguf", header(0n, 1n, str("k"), i32(9), i32(9), u64(1n))), /array of arrays/);
    await expectBad(await variant("emptykey.gguf", header(0n, 1n, str(""), i32(4), u32(1))), /empty/);
    await expectBad(await variant("dupkey.gguf", header(0n, 2n, str("k"), i32(4), u32(1), str("k"), i32(4), u32(1))), /duplicate key/);
    await expectBad(await variant("bool.gguf", header(0n, 1n, str("k"), i32(7), Buffer.from([5]))), /bool/);
    await expectBad(await variant("utf8.gguf", header(0n, 1n, u64(2n), Buffer.from([0xff, 0xfe]), i32(4), u32(1))), /UTF-8/);
    await expectBad(await variant("align.gguf", header(0n, 1n, str("general.alignment"), i32(4), u32(24))), /power of two/);
    await expectBad(await variant("aligntype.gguf", header(0n, 1n, str("general.alignment"), i32(5), i32(32))), /must be u32/);
  });

  it("bad tensor infos", async () => {
    const tensor = (name: string, dims: bigint[], type: number, offset: bigint) =>
      Buffer.concat([str(name), u32(dims.length), ...dims.map((d) => {
        const b = Buffer.alloc(8);
        b.writeBigInt64LE(d);
        return b;
      }), i32(type), u64(offset)]);
    await expectBad(await variant("ndims.gguf", header(1n, 0n, str("t"), u32(5))), /5 dimensions/);
    await expectBad(await variant("negdim.gguf", header(1n, 0n, tensor("t", [-4n], 0, 0n))), /negative dimension/);
    await expectBad(await variant("hugedim.gguf", header(1n, 0n, tensor("t", [2n ** 40n, 2n ** 40n], 0, 0n))), /too many elements|too large/);
    await expectBad(await variant("bigtensor.gguf", header(1n, 0n, tensor("t", [2n ** 30n, 16n], 0, 0n))), /more than the whole file/);
    await expectBad(await variant("type.gguf", header(1n, 0n, tensor("t", [4n], 77, 0n))), /unknown or unsupported ggml type 77/);
    await expectBad(await variant("block.gguf", header(1n, 0n, tensor("t", [33n], 8, 0n))), /not a multiple of the block size/);
    await expectBad(await variant("offset.gguf", header(1n, 0n, tensor("t", [4n], 0, 64n))), /offset 64, expected 0/);
    await expectBad(await variant("offset2.gguf", header(2n, 0n, tensor("a", [4n], 0, 0n), tensor("b", [4n], 0, 16n))), /expected 32/);
    await expectBad(await variant("dupname.gguf", header(2n, 0n, tensor("a", [4n], 0, 0n), tensor("a", [4n], 0, 32n))), /duplicate tensor name/);
    await expectBad(await variant("longname.gguf", header(1n, 0n, tensor("n".repeat(64), [4n], 0, 0n))), /longer than 63/);
  });
});
