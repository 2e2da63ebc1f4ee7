import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SentencePieceModel } from "../../lib/index.js";

const modelPath = new URL("../fixtures/tiny-jsd/tokenizer/spiece.model", import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), "jsd-sp-"));

describe("SentencePieceModel", () => {
  it("loads from a path and from bytes, with JSD's special ids", async () => {
    const fromPath = await SentencePieceModel.load(modelPath);
    const fromBytes = SentencePieceModel.fromBytes(readFileSync(modelPath));
    expect(fromPath.vocabSize).toBe(8000);
    expect(fromBytes.vocabSize).toBe(8000);
    expect(fromPath.specialIds).toEqual({ unk: 2, pad: 0, eos: 1, bos: -1 });
    expect(fromPath.idToPiece(1)).toBe("</s>");
  });

  it("encodes common prompt words as single pieces and decodes them back", async () => {
    const sp = await SentencePieceModel.load(modelPath);
    // Words the fixture README says are single pieces.
    for (const word of ["赤い", "青い", "猫", "油絵", "サラリーマン"]) {
      const { pieces } = sp.encode(`赤い${word}`);
      expect(pieces.at(-1)).toBe(word);
    }
    const { ids, pieces } = sp.encode("赤い丸と青い四角");
    expect(pieces.join("")).toBe("▁赤い丸と青い四角");
    expect(ids.every((id) => id > 2 && id < 8000)).toBe(true);
    expect(sp.decode(ids)).toBe("赤い丸と青い四角");
    expect(sp.pieceToId(pieces[1])).toBe(ids[1]);
  });

  it("applies nmt_nfkc normalisation and maps unknown characters to <unk>", async () => {
    const sp = await SentencePieceModel.load(modelPath);
    expect(sp.encode("ＡＢＣ").ids).toEqual(sp.encode("ABC").ids);
    expect(sp.encode("🐱").ids).toContain(2);
  });

  it("rejects a missing file with JSD_NOT_FOUND", async () => {
    await expect(SentencePieceModel.load(join(scratch, "missing.model"))).rejects.toMatchObject({ code: "JSD_NOT_FOUND" });
  });

  it("rejects an empty file with JSD_BAD_TOKENIZER", async () => {
    const empty = join(scratch, "empty.model");
    writeFileSync(empty, "");
    await expect(SentencePieceModel.load(empty)).rejects.toMatchObject({ code: "JSD_BAD_TOKENIZER", message: expect.stringMatching(/empty/) });
  });

  it("rejects random bytes and other files with JSD_BAD_TOKENIZER", async () => {
    for (let seed = 0; seed < 20; seed++) {
      const junk = join(scratch, `junk${seed}.model`);
      writeFileSync(junk, randomBytes(64 + seed * 97));
      await expect(SentencePieceModel.load(junk)).rejects.toMatchObject({ code: "JSD_BAD_TOKENIZER" });
    }
    await expect(SentencePieceModel.load(new URL("../../package.json", import.meta.url).pathname)).rejects.toMatchObject({
      code: "JSD_BAD_TOKENIZER",
    });
    // A real model cut in half is not a model either.
    const half = readFileSync(modelPath).subarray(0, 1000);
    expect(() => SentencePieceModel.fromBytes(half)).toThrow(expect.objectContaining({ code: "JSD_BAD_TOKENIZER" }));
  });

  it("rejects bad arguments with TypeError / JSD_INVALID_ARGUMENT", async () => {
    const sp = await SentencePieceModel.load(modelPath);
    expect(() => sp.encode(42 as unknown as string)).toThrow(TypeError);
    expect(() => sp.decode([1e9])).toThrow(expect.objectContaining({ code: "JSD_INVALID_ARGUMENT" }));
    expect(() => sp.decode([1.5])).toThrow(RangeError);
    expect(() => SentencePieceModel.fromBytes("x" as unknown as Uint8Array)).toThrow(TypeError);
  });
});

// The normalizer's precompiled_charsmap (ModelProto field 3, NormalizerSpec field 2) of the
// fixture: where it starts in the file and how long it is, read from the protobuf wire format.
function charsmapSpan(model: Uint8Array): { start: number; length: number } {
  const varint = (at: number): [number, number] => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = model[at++];
      value += (byte & 0x7f) * 2 ** shift;
      if (!(byte & 0x80)) return [value, at];
    }
  };
  const fields = function* (start: number, end: number): Generator<{ field: number; start: number; length: number }> {
    let at = start;
    while (at < end) {
      const [key, afterKey] = varint(at);
      const wire = key & 7;
      if (wire === 0) at = varint(afterKey)[1];
      else if (wire === 1) at = afterKey + 8;
      else if (wire === 5) at = afterKey + 4;
      else {
        const [length, body] = varint(afterKey);
        yield { field: key >>> 3, start: body, length };
        at = body + length;
      }
    }
  };
  for (const spec of fields(0, model.length)) {
    if (spec.field !== 3) continue;
    for (const f of fields(spec.start, spec.start + spec.length)) if (f.field === 2) return { start: f.start, length: f.length };
  }
  throw new Error("the fixture has no precompiled_charsmap");
}

describe("hostile normalization tables (sentencepiece reads them unchecked)", () => {
  const good = readFileSync(modelPath);
  const { start, length } = charsmapSpan(good);
  const trieBytes = good.readUInt32LE(start);
  const rejects = (bytes: Uint8Array, why: RegExp) =>
    expect(() => SentencePieceModel.fromBytes(bytes)).toThrow(expect.objectContaining({ code: "JSD_BAD_TOKENIZER", message: expect.stringMatching(why) }));

  it("the fixture's table is accepted (the check walks it without a false alarm)", () => {
    expect(trieBytes).toBeGreaterThan(0);
    expect(trieBytes).toBeLessThan(length - 4);
    expect(SentencePieceModel.fromBytes(good).encode("ＡＢＣ").pieces.join("")).toBe("▁ABC");
  });

  it("a trie size larger than the table", () => {
    const bad = Buffer.from(good);
    bad.writeUInt32LE(length - 2, start);
    rejects(bad, /normalization trie is larger than its table/);
  });

  it("replacement strings without their terminating NUL", () => {
    const bad = Buffer.from(good);
    for (let i = start + 4 + trieBytes; i < start + length; i++) if (bad[i] === 0) bad[i] = 0x41;
    rejects(bad, /points outside the replacement strings/);
  });

  it("a root whose children lie outside the trie", () => {
    const bad = Buffer.from(good);
    bad.writeUInt32LE(0xfffffc00, start + 4); // unit 0: the largest offset
    rejects(bad, /points outside the trie/);
  });

  it("the input fuzz_tokenizer found reading outside the table (test/fuzz-corpus/regressions)", () => {
    const found = readFileSync(new URL("../fuzz-corpus/regressions/fuzz_tokenizer/asan-charsmap-read-outside.model", import.meta.url));
    rejects(found, /normalization/);
  });
});
