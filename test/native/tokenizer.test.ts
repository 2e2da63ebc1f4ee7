import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { JsdError } from "../../lib/errors.js";
import { SentencePieceModel } from "../../lib/prompt/sentencepiece.js";
import {
  JSD_TOKENIZER_CONFIG,
  JsdTokenizer,
  pythonLowerPerCodePoint,
  pythonLstrip,
  pythonRstrip,
} from "../../lib/prompt/tokenizer.js";

const modelPath = new URL("../fixtures/tiny-jsd/tokenizer/spiece.model", import.meta.url).pathname;
const fixturePath = new URL("../fixtures/reference/tokenizer.json", import.meta.url).pathname;

interface Case {
  text: string;
  input_ids: number[];
  n_tokens_before_padding: number;
  truncated: boolean;
  n_tokens_untruncated: number;
  pieces: string[];
}
const fixture = JSON.parse(readFileSync(fixturePath, "utf8")) as {
  pad_id: number;
  eos_id: number;
  unk_id: number;
  cases: Case[];
};

let sp: SentencePieceModel;
let tok: JsdTokenizer;

beforeAll(async () => {
  sp = await SentencePieceModel.load(modelPath);
  tok = new JsdTokenizer(sp, JSD_TOKENIZER_CONFIG);
});

function expectInvalid(fn: () => unknown, pattern?: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(JsdError);
    expect((error as JsdError).code).toBe("JSD_INVALID_ARGUMENT");
    if (pattern) expect((error as Error).message).toMatch(pattern);
    return;
  }
  throw new Error("expected a JSD_INVALID_ARGUMENT error");
}

describe("JsdTokenizer against the reference (transformers 4.25.1 slow T5Tokenizer)", () => {
  it("has the fixture's ids and 40 cases", () => {
    expect(fixture.cases).toHaveLength(40);
    expect([fixture.pad_id, fixture.eos_id, fixture.unk_id]).toEqual([
      JSD_TOKENIZER_CONFIG.padId,
      JSD_TOKENIZER_CONFIG.eosId,
      JSD_TOKENIZER_CONFIG.unkId,
    ]);
  });

  it.each(fixture.cases.map((c, i) => [i, JSON.stringify(c.text).slice(0, 60), c] as const))(
    "case %i: %s",
    (_i, _label, c) => {
      const out = tok.tokenize(c.text);
      expect(Array.from(out.ids)).toEqual(c.input_ids);
      expect(out.ids).toHaveLength(77);
      expect(out.length).toBe(c.n_tokens_before_padding);
      expect(out.truncated).toBe(c.truncated);
      expect(out.untruncatedLength).toBe(c.n_tokens_untruncated);
      expect(out.pieces).toEqual(c.pieces);
      // Bookkeeping consistency.
      const raw = tok.encodeRaw(c.text);
      expect(raw.pieces).toEqual(c.pieces);
      expect(raw.ids).toHaveLength(c.pieces.length);
      expect(out.droppedTokens).toBe(Math.max(0, raw.ids.length - 76));
      expect(out.droppedTokens > 0).toBe(c.truncated);
    },
  );

  it("covers the tricky cases the README lists", () => {
    const texts = fixture.cases.map((c) => c.text);
    expect(texts).toContain("");
    expect(texts).toContain("<unk>猫<pad>");
    expect(fixture.cases.some((c) => c.n_tokens_untruncated === 77 && !c.truncated)).toBe(true);
    expect(fixture.cases.some((c) => c.n_tokens_untruncated === 78 && c.truncated)).toBe(true);
  });
});

describe("lower-casing (Python 3.11 str.lower per code point)", () => {
  it("matches CPython 3.11.7 / Unicode 14.0.0 on every code point", () => {
    // Digest of `f"{cp:x}:{','.join('%x' % ord(x) for x in chr(cp).lower())};"` over every
    // non-surrogate cp with chr(cp).lower() != chr(cp), computed with CPython 3.11.7.
    const hash = createHash("sha256");
    let count = 0;
    for (let cp = 0; cp < 0x110000; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const ch = String.fromCodePoint(cp);
      const lower = pythonLowerPerCodePoint(ch);
      if (lower === ch) continue;
      count++;
      hash.update(`${cp.toString(16)}:${[...lower].map((x) => x.codePointAt(0)!.toString(16)).join(",")};`);
    }
    expect(count).toBe(1433);
    expect(hash.digest("hex")).toBe("b48df84544102c267c578e51f4c3b9d0e88f29a3cda0ec03e6120507fa66f716");
  });

  it("differs from JS toLowerCase where Python does", () => {
    expect(pythonLowerPerCodePoint("İ")).toBe("i\u0307");
    expect(pythonLowerPerCodePoint("ΣΑΣ")).toBe("σασ"); // JS: "σας" (final sigma)
    expect("ΣΑΣ".toLowerCase()).toBe("σας");
    // Case pairs added after Unicode 14 stay as they are.
    expect(pythonLowerPerCodePoint("\ua7cb\u1c89\u{10d50}")).toBe("\ua7cb\u1c89\u{10d50}");
    expect(pythonLowerPerCodePoint("ＡＢＣ Ⅻ Ⓐ 𐐀 ǅ")).toBe("ａｂｃ ⅻ ⓐ 𐐨 ǆ");
    const plain = "猫 abc";
    expect(pythonLowerPerCodePoint(plain)).toBe(plain);
  });

  it("uses per-character lowering in the pieces", () => {
    expect(tok.tokenize("ΣΑΣ").pieces).toEqual(["▁", "σασ"]);
    expect(tok.tokenize("İ").pieces).toEqual(["▁i", "\u0307"]);
  });

  it("lower-cases before the special-token split, so <UNK> and </S> are special tokens", () => {
    const out = tok.tokenize("猫<UNK>犬</S>");
    expect(out.pieces).toEqual(["▁", "猫", "<unk>", "▁", "犬", "</s>"]);
    expect(Array.from(out.ids.slice(0, 7))).toEqual([3, 847, 2, 3, 949, 1, 0]);
    expect(out.length).toBe(6);
  });

  it("keeps the case with doLowerCase: false", () => {
    const cased = new JsdTokenizer(sp, { ...JSD_TOKENIZER_CONFIG, doLowerCase: false });
    expect(cased.tokenize("Café").pieces).toEqual(["▁Ca", "f", "é"]);
    expect(cased.tokenize("<UNK>").pieces).not.toContain("<unk>");
    expect(tok.tokenize("Café").pieces).toEqual(["▁c", "af", "é"]);
  });
});

describe("special tokens and whitespace", () => {
  it("strips Python whitespace around special tokens (U+0085 yes, U+FEFF no)", () => {
    expect(pythonLstrip("\u0085\u3000 \t猫 ")).toBe("猫 ");
    expect(pythonRstrip(" 猫\u00a0\u001f\n")).toBe(" 猫");
    expect(pythonLstrip("\ufeff猫")).toBe("\ufeff猫");
    // Unstripped, U+0085 would reach sentencepiece as an unknown piece.
    expect(sp.encode("\u0085猫").pieces).toContain("\u0085");
    expect(tok.tokenize("</s>\u0085猫").pieces).toEqual(["</s>", "▁", "猫"]);
    expect(tok.tokenize("猫\u0085<pad>").pieces).toEqual(["▁", "猫", "<pad>"]);
  });

  it("gives each chunk after a special token its own dummy prefix", () => {
    expect(tok.tokenize("a</s>b").pieces).toEqual(["▁a", "</s>", "▁b"]);
    expect(tok.tokenize("<pad><pad>").pieces).toEqual(["<pad>", "<pad>"]);
    expect(Array.from(tok.tokenize("<pad><pad>").ids.slice(0, 4))).toEqual([0, 0, 1, 0]);
    // Whitespace between two special tokens disappears entirely.
    expect(tok.tokenize(" </s> \n </s> ").pieces).toEqual(["</s>", "</s>"]);
    expect(tok.tokenize(" </s> \n </s> ").length).toBe(2);
    // A partial token is plain text; a '<' right before a token does not hide it.
    expect(tok.tokenize("<<unk>").pieces).toEqual(["▁<", "<unk>"]);
    expect(tok.tokenize("</s").pieces).toEqual(["▁<", "/", "s"]);
  });

  it("gives [</s>, pad...] for empty and whitespace-only text", () => {
    for (const text of ["", " ", "\n\t ", "\u3000", "\u0001"]) {
      const out = tok.tokenize(text);
      expect(out.length).toBe(1);
      expect(out.ids[0]).toBe(1);
      expect(out.ids.slice(1).every((id) => id === 0)).toBe(true);
      expect(out.pieces).toEqual([]);
      expect(out.truncated).toBe(false);
      expect(out.untruncatedLength).toBe(1);
    }
  });

  it("merges a run of unknown characters into one <unk>", () => {
    const out = tok.tokenize("猫🐱🐶🎨犬");
    expect(out.pieces).toEqual(["▁", "猫", "🐱🐶🎨", "犬"]);
    expect(Array.from(out.ids.slice(0, 5))).toEqual([3, 847, 2, 949, 1]);
  });
});

describe("truncation", () => {
  it("keeps maxLength - 1 ids, then </s>", () => {
    const text = "猫 ".repeat(100);
    const raw = tok.encodeRaw(text);
    expect(raw.ids.length).toBe(200);
    const out = tok.tokenize(text);
    expect(out.length).toBe(77);
    expect(out.ids[76]).toBe(1);
    expect(Array.from(out.ids.slice(0, 76))).toEqual(raw.ids.slice(0, 76));
    expect(out.untruncatedLength).toBe(201);
    expect(out.droppedTokens).toBe(124);
    expect(out.truncated).toBe(true);
  });

  it("follows prepare_for_model on the edge cases", () => {
    const small = new JsdTokenizer(sp, { ...JSD_TOKENIZER_CONFIG, maxLength: 5 });
    const run = (ids: number[]) => {
      const r = small.toInputIds(ids);
      return [Array.from(r.ids), r.length, r.droppedTokens];
    };
    expect(run([])).toEqual([[1, 0, 0, 0, 0], 1, 0]);
    expect(run([7, 8, 9, 10])).toEqual([[7, 8, 9, 10, 1], 5, 0]);
    expect(run([7, 8, 9, 10, 11])).toEqual([[7, 8, 9, 10, 1], 5, 1]);
    // Already ending in </s>: nothing added.
    expect(run([7, 8, 1])).toEqual([[7, 8, 1, 0, 0], 3, 0]);
    // 5 ids ending in </s>: 5 + 1 > 5, so truncated to 4, then </s> appended.
    expect(run([7, 8, 9, 10, 1])).toEqual([[7, 8, 9, 10, 1], 5, 1]);
    // Truncation leaves a </s> at the end: no second one.
    expect(run([7, 8, 9, 1, 1])).toEqual([[7, 8, 9, 1, 0], 4, 1]);
    const t = small.tokenize("赤い丸</s>");
    expect(Array.from(t.ids)).toEqual([3, 192, 736, 1, 0]);
    expect([t.length, t.untruncatedLength, t.truncated]).toEqual([4, 4, false]);
  });
});

describe("bad input", () => {
  it("throws TypeError for a non-string text", () => {
    for (const bad of [undefined, null, 42, ["猫"], { text: "猫" }, new String("猫"), Symbol("x")]) {
      expect(() => tok.tokenize(bad as unknown as string)).toThrow(TypeError);
      expect(() => tok.encodeRaw(bad as unknown as string)).toThrow(TypeError);
    }
  });

  it("rejects a lone surrogate with JSD_INVALID_ARGUMENT, accepts a proper pair", () => {
    expectInvalid(() => tok.tokenize("猫\ud83d"), /surrogate.*index 1/);
    expectInvalid(() => tok.tokenize("\udc31猫"), /U\+DC31/);
    expectInvalid(() => tok.tokenize("a\ud83d\ud83d\udc31"), /index 1/);
    expect(tok.tokenize("\ud83d\udc31").pieces).toEqual(["▁", "🐱"]);
  });

  it("passes NUL on to sentencepiece, which makes it <unk> (as the reference does)", () => {
    const out = tok.tokenize("猫\u0000犬");
    expect(out.pieces).toEqual(["▁", "猫", "\u0000", "犬"]);
    expect(Array.from(out.ids.slice(0, 5))).toEqual([3, 847, 2, 949, 1]);
    // Other C0 controls are dropped by nmt_nfkc, tab/newline are spaces.
    expect(tok.tokenize("猫\u0001犬").pieces).toEqual(["▁", "猫", "犬"]);
  });

  it("validates the config", () => {
    expect(() => new JsdTokenizer({} as SentencePieceModel, JSD_TOKENIZER_CONFIG)).toThrow(TypeError);
    expectInvalid(() => new JsdTokenizer(sp, { ...JSD_TOKENIZER_CONFIG, maxLength: 1 }));
    expectInvalid(() => new JsdTokenizer(sp, { ...JSD_TOKENIZER_CONFIG, maxLength: 7.5 }));
    expectInvalid(() => new JsdTokenizer(sp, { ...JSD_TOKENIZER_CONFIG, padId: -1 }));
    expectInvalid(() => new JsdTokenizer(sp, { ...JSD_TOKENIZER_CONFIG, specialTokens: { "": 3 } }));
    expect(() => new JsdTokenizer(sp, { ...JSD_TOKENIZER_CONFIG, doLowerCase: "yes" as unknown as boolean })).toThrow(
      TypeError,
    );
    expect(() => tok.toInputIds("1,2" as unknown as number[])).toThrow(TypeError);
  });
});

describe("JsdTokenizer.load", () => {
  it("loads a model file with JSD's defaults", async () => {
    const loaded = await JsdTokenizer.load(modelPath);
    expect(loaded.config).toMatchObject({ padId: 0, eosId: 1, unkId: 2, maxLength: 77, doLowerCase: true });
    expect(loaded.config.specialTokens).toEqual({ "</s>": 1, "<unk>": 2, "<pad>": 0 });
    expect(Array.from(loaded.tokenize("赤い丸").ids.slice(0, 5))).toEqual([3, 192, 736, 1, 0]);
  });

  it("supports custom special tokens", async () => {
    const custom = await JsdTokenizer.load(readFileSync(modelPath), {
      specialTokens: { "</s>": 1, "<unk>": 2, "<pad>": 0, "[SEP]": 5 },
    });
    expect(custom.tokenize("猫 [SEP] 犬").pieces).toEqual(["▁", "猫", "[SEP]", "▁", "犬"]);
    expect(custom.tokenize("猫 [SEP] 犬").ids[2]).toBe(5);
  });
});
