// promptMode "extended" (issue #10): chunked tokens, BREAK, commas as chunk boundaries, the
// negative and positive prompts padded to one chunk count, emphasis on the text states with the
// mean restored, the mode and dropped tokens in results and PNGs, and reference mode unchanged.
// Ends with the acceptance check on the embedded model: a subject after token 77 is drawn in
// extended mode and not in reference mode.
// Over 400 lines, and one job: one subject's cases, each short.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SHAPE_PALETTE } from "../../lib/eval/shape-judge.js";
import { isJsdError } from "../../lib/errors.js";
import { readPngText } from "../../lib/image/png.js";
import { loadModel, type Model } from "../../lib/model.js";
import { denoise, type DenoiseInput } from "../../lib/pipeline/denoise.js";
import { resolveOptions } from "../../lib/pipeline/options.js";
import { applyEmphasis } from "../../lib/prompt/emphasis.js";
import { encodeExtendedPrompts, MAX_PROMPT_CHUNKS } from "../../lib/prompt/encode.js";
import { formatTokenListing } from "../../lib/prompt/format.js";
import { splitAtBreaks } from "../../lib/prompt/parse.js";
import { chunkTokens, padChunks, tokenizeExtended, type ExtendedPromptTokens, type WeightedToken } from "../../lib/prompt/tokens.js";

let model: Model;
beforeAll(async () => {
  model = await loadModel(undefined, { threads: 2 }); // the embedded tiny-jsd-shapes
});
afterAll(async () => {
  await model?.close();
});

const SUBJECT = "青い背景に黄色い星";
/** 76 tokens of filler (the 76th a comma), then the subject from token 77 on. */
const LONG_PROMPT = "イラスト、".repeat(36) + "の絵、" + SUBJECT;

/** The prompt's tokens without the dummy prefixes that chunks opening mid-text get. */
function textPieces(t: ExtendedPromptTokens): string[] {
  return t.chunks.flatMap((c) =>
    c.tokens.flatMap((tok) => {
      if (!tok.dummyPrefix) return [tok.piece];
      return tok.piece === "▁" ? [] : [tok.piece.slice(1)];
    }),
  );
}

function chunkPieces(t: ExtendedPromptTokens): string[][] {
  return t.chunks.map((c) => c.tokens.map((tok) => tok.piece));
}

describe("model.tokenize", () => {
  it("defaults to reference mode: rinna's tokenizer, plus the count against the limit", () => {
    const text = "赤い丸と青い四角、".repeat(15);
    const t = model.tokenize(text);
    const ref = model.tokenizer.tokenize(text);
    expect(t.mode).toBe("reference");
    expect(t.ids).toEqual(ref.ids);
    expect(t.pieces).toEqual(ref.pieces);
    expect(t.droppedTokens).toBe(ref.droppedTokens);
    expect(t.count).toBe(ref.pieces.length);
    expect(t.limit).toBe(76);
    expect(t.droppedTokens).toBe(t.count - 76);
    expect(model.tokenize(text, { mode: "reference" })).toEqual(t);
    expect(() => model.tokenize(text, { mode: "bogus" as "reference" })).toThrow(RangeError);
  });

  it("a prompt without syntax that fits in one chunk tokenizes exactly as the reference", () => {
    for (const text of ["白い背景に赤い丸", "赤い丸、白い背景", "  夜空に　浮かぶ月  ", "サラリーマン", "", "猫</s>犬", "Café 123"]) {
      const t = model.tokenize(text, { mode: "extended" });
      const ref = model.tokenizer.tokenize(text);
      expect(t.pieces, text).toEqual(ref.pieces);
      expect(t.chunks).toHaveLength(1);
      expect(t.ids, text).toEqual(ref.ids);
      expect(Array.from(t.weights).every((w) => w === 1)).toBe(true);
      expect(t.droppedTokens).toBe(0);
      expect(t.limit).toBe(75);
    }
  });

  it("weighted text is tokenized as the plain text, the weights by fragment", () => {
    const t = model.tokenize("白い背景に(赤い丸:1.3)、[星]", { mode: "extended" });
    expect(t.pieces).toEqual(model.tokenizer.encodeRaw("白い背景に赤い丸、星").pieces);
    expect(t.chunks[0].tokens.map((x) => [x.piece, Math.round(x.weight * 1000) / 1000])).toEqual([
      ["▁白い", 1],
      ["背景", 1],
      ["に", 1],
      ["赤い", 1.3],
      ["丸", 1.3],
      ["、", 1],
      ["星", 0.909],
    ]);
    // weights sit at the ids' positions; `</s>` and padding weigh 1
    expect(Array.from(t.weights.slice(0, 9)).map((w) => Math.round(w * 1000) / 1000)).toEqual([1, 1, 1, 1.3, 1.3, 1, 0.909, 1, 1]);
    expect(t.ids[7]).toBe(model.tokenizer.config.eosId);
  });

  it("full-width syntax gives the same tokens and weights as half-width", () => {
    const a = model.tokenize("（赤い丸：１．３）、［白い背景］", { mode: "extended" });
    const b = model.tokenize("(赤い丸:1.3)、[白い背景]", { mode: "extended" });
    expect(a.ids).toEqual(b.ids);
    expect(a.weights).toEqual(b.weights);
  });

  it("random prompts with syntax: never throws, each segment gives the plain text's pieces", () => {
    const alphabet = ["(", ")", "[", "]", "（", "）", "［", "］", ":1.3)", "：０．５）", "\\", " ", "　", " BREAK ", "ＢＲＥＡＫ", "赤い", "丸", "、", ",", "背景", "a", "🐱", "</s>", "イ"];
    let seed = 99;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    for (let n = 0; n < 400; n++) {
      let text = "";
      for (let i = Math.floor(rand() * 30); i > 0; i--) text += alphabet[Math.floor(rand() * alphabet.length)];
      const t = tokenizeExtended(model.tokenizer, text);
      const expected = splitAtBreaks(t.parts)
        .map((segment) => segment.map((f) => f.text).join(""))
        .flatMap((plain) => model.tokenizer.encodeRaw(plain).pieces);
      expect(textPieces(t), JSON.stringify(text)).toEqual(expected);
      expect(t.weights.length).toBe(t.ids.length);
    }
  });

  it("a piece that straddles a weight boundary takes the weight of most of its text", () => {
    // 「赤い」 is one piece: (赤)い puts half of it in the emphasis; ▁赤い is 2 of 3 characters there.
    const t = model.tokenize("(赤)い丸", { mode: "extended" });
    expect(t.pieces).toEqual(model.tokenizer.encodeRaw("赤い丸").pieces);
    expect(t.chunks[0].tokens.map((x) => x.weight)).toEqual([1.1, 1]);
  });
});

describe("chunks", () => {
  it("splits a long prompt into chunks of at most 75 tokens, each wrapped as the reference does", () => {
    const text = "赤い丸と青い四角".repeat(40); // no commas
    const t = model.tokenize(text, { mode: "extended" });
    const raw = model.tokenizer.encodeRaw(text);
    expect(t.chunks.length).toBe(Math.ceil(raw.ids.length / 75));
    expect(textPieces(t)).toEqual(raw.pieces);
    expect(t.count).toBe(t.pieces.length);
    expect(t.limit).toBe(t.chunks.length * 75);
    expect(t.ids.length).toBe(t.chunks.length * 77);
    const { eosId, padId } = model.tokenizer.config;
    for (const [i, c] of t.chunks.entries()) {
      const n = c.tokens.length;
      expect(n).toBeLessThanOrEqual(75);
      expect(Array.from(c.ids.slice(0, n))).toEqual(c.tokens.map((x) => x.id));
      expect(c.ids[n]).toBe(eosId);
      expect(Array.from(c.ids.slice(n + 1)).every((id) => id === padId)).toBe(true);
      expect(c.ids).toEqual(model.tokenizer.toInputIds(c.tokens.map((x) => x.id)).ids);
      expect(c.end).toBe(i === t.chunks.length - 1 ? "end" : "full");
      // every chunk starts as a text does: with sentencepiece's dummy prefix
      expect(c.tokens[0].piece.startsWith("▁")).toBe(true);
      expect(Array.from(t.ids.slice(i * 77, (i + 1) * 77))).toEqual(Array.from(c.ids));
    }
    expect(t.droppedTokens).toBe(0);
    // the reference keeps 76 and drops the rest
    expect(model.tokenize(text).droppedTokens).toBe(raw.ids.length - 76);
  });

  it("ends a chunk at a comma within its last 20 tokens; the phrase after it opens the next chunk", () => {
    // 「赤い丸と青い四角」×13 = 65 tokens, 「、」 is token 66, then a 14-token phrase
    const phrase = "赤い丸と青い四角".repeat(2) + "白い背景に星";
    const t = model.tokenize("赤い丸と青い四角".repeat(13) + "、" + phrase, { mode: "extended" });
    expect(t.chunks.map((c) => c.tokens.length)).toEqual([66, 14]);
    expect(t.chunks[0].end).toBe("comma");
    expect(t.chunks[0].tokens.at(-1)!.piece).toBe("、");
    expect(t.chunks[1].tokens[0]).toMatchObject({ piece: "▁赤い", dummyPrefix: true });
    expect(textPieces(t)).toEqual(model.tokenizer.encodeRaw("赤い丸と青い四角".repeat(13) + "、" + phrase).pieces);
    // a comma further back than 20 tokens: the chunk is cut where it is full
    const far = model.tokenize("赤い丸と青い四角".repeat(6) + "、" + "赤い丸と青い四角".repeat(10), { mode: "extended" });
    expect(far.chunks.map((c) => c.tokens.length)).toEqual([75, 6]);
    expect(far.chunks[0].end).toBe("full");
  });

  it("keeps a comma that follows a full chunk in that chunk (76 tokens + </s>)", () => {
    const t = model.tokenize(LONG_PROMPT, { mode: "extended" });
    expect(t.count).toBe(81);
    expect(chunkPieces(t)).toEqual([t.pieces.slice(0, 76), ["▁青い", "背景", "に", "黄色い", "星"]]);
    expect(t.chunks[0].end).toBe("comma");
    expect(t.chunks[0].ids[76]).toBe(model.tokenizer.config.eosId);
    expect(t.chunks[1].tokens[0].dummyPrefix).toBe(true);
  });

  it("BREAK (and ＢＲＥＡＫ) ends the chunk; the next segment starts afresh with its own ▁", () => {
    const t = model.tokenize("白い背景に赤い丸 BREAK 青い背景ＢＲＥＡＫ(黄色い星)", { mode: "extended" });
    expect(chunkPieces(t)).toEqual([
      ["▁白い", "背景", "に", "赤い", "丸"],
      ["▁青い", "背景"],
      ["▁黄色い", "星"],
    ]);
    expect(t.chunks.map((c) => c.end)).toEqual(["break", "break", "end"]);
    expect(t.chunks[2].tokens.map((x) => x.weight)).toEqual([1.1, 1.1]);
    expect(t.chunks.every((c) => c.tokens.every((x) => !x.dummyPrefix))).toBe(true);
    // BREAK at the start, twice in a row or at the end adds no empty chunk
    expect(chunkPieces(model.tokenize("BREAK 赤い丸 BREAK BREAK 青い BREAK", { mode: "extended" }))).toEqual([["▁赤い", "丸"], ["▁青い"]]);
    // an empty prompt is one empty chunk, as the reference encodes ""
    const empty = model.tokenize("", { mode: "extended" });
    expect(empty.chunks).toHaveLength(1);
    expect(empty.ids).toEqual(model.tokenizer.tokenize("").ids);
  });

  it("chunkTokens: the dummy prefix is a ▁ piece when the vocabulary has no ▁X", () => {
    const tok = (piece: string, weight = 1): WeightedToken => ({ id: model.tokenizer.sentencePiece.pieceToId(piece), piece, weight });
    const items = [...Array.from({ length: 75 }, () => tok("丸")), tok("ラ", 1.5)];
    const chunks = chunkTokens(model.tokenizer, items);
    expect(chunks.map((c) => c.tokens.length)).toEqual([75, 2]);
    expect(chunks[1].tokens).toEqual([
      { id: model.tokenizer.sentencePiece.pieceToId("▁"), piece: "▁", weight: 1.5, dummyPrefix: true },
      tok("ラ", 1.5),
    ]);
  });

  it("pads the shorter prompt with empty chunks", () => {
    const t = tokenizeExtended(model.tokenizer, "赤い丸");
    const padded = padChunks(model.tokenizer, t, 3);
    expect(padded.chunks.map((c) => c.end)).toEqual(["end", "padding", "padding"]);
    const empty = model.tokenizer.tokenize("").ids;
    expect(padded.chunks[1].ids).toEqual(empty);
    expect(padded.chunks[2].ids).toEqual(empty);
    expect(padded.ids.length).toBe(3 * 77);
    expect(padded.count).toBe(t.count);
    expect(padChunks(model.tokenizer, t, 1)).toBe(t);
  });

  it("formats a token listing with the chunk boundaries marked", () => {
    const listing = formatTokenListing(model.tokenize(LONG_PROMPT, { mode: "extended" }));
    const lines = listing.split("\n");
    expect(lines[0]).toBe("extended mode: 81 tokens / 150 (2 chunks of 75)");
    expect(lines[1]).toBe("── chunk 1/2 · tokens 1–76 (76) · ends after a comma ──");
    expect(lines).toContain("── chunk 2/2 · tokens 77–81 (5) · last ──");
    expect(lines.find((l) => l.includes("▁青い"))).toMatch(/^\s+77 {2}▁青い\s+121\s+\(chunk start: dummy prefix ▁\)$/);
    expect(formatTokenListing(model.tokenize("(赤い丸:1.3)", { mode: "extended" }))).toMatch(/▁赤い\s+120 {2}×1\.3/);
    const ref = formatTokenListing(model.tokenize(LONG_PROMPT)).split("\n");
    expect(ref[0]).toBe("reference mode: 81 tokens / 76 · 5 dropped (truncated at 76)");
    expect(ref[77]).toBe("── truncated: the 5 tokens below are dropped ──");
    expect(ref[78]).toMatch(/^\s+77 {2}青い\s+-$/);
    expect(formatTokenListing(model.tokenize("赤い丸"), { ids: false }).split("\n")[1]).toMatch(/^\s+1 {2}▁赤い$/);
  });
});

describe("emphasis on text states", () => {
  it("multiplies each token's states by its weight and restores the chunk's mean", () => {
    const hidden = 3;
    const seq = 4;
    const states = Float32Array.from({ length: 2 * seq * hidden }, (_, i) => Math.sin(i + 1) + 0.5);
    const weights = Float32Array.from([1, 1.5, 1, 1, 0.5, 1, 1, 1]);
    const out = applyEmphasis(states, weights, seq, hidden);
    for (let c = 0; c < 2; c++) {
      const mean = (a: Float32Array) => a.slice(c * seq * hidden, (c + 1) * seq * hidden).reduce((s, x) => s + x, 0) / (seq * hidden);
      expect(mean(out)).toBeCloseTo(mean(states), 6);
      let k: number | undefined;
      for (let t = 0; t < seq; t++) {
        for (let h = 0; h < hidden; h++) {
          const i = (c * seq + t) * hidden + h;
          const ratio = out[i] / (states[i] * weights[c * seq + t]);
          k ??= ratio;
          expect(ratio).toBeCloseTo(k, 5); // one rescale factor per chunk
        }
      }
    }
    const ones = new Float32Array(2 * seq).fill(1);
    expect(applyEmphasis(states, ones, seq, hidden)).toBe(states);
    expect(() => applyEmphasis(states, weights, 3, hidden)).toThrow(RangeError);
  });

  it("encodes weighted prompts through the text encoder with the weights applied", async () => {
    const e = await encodeExtendedPrompts(model, "白い背景に(赤い丸:1.5)", "[黒い]四角");
    expect(e.chunks).toBe(1);
    const hidden = model.textHiddenSize;
    const raw = await model.encodeText(e.cond.ids, 1);
    const rawNeg = await model.encodeText(e.uncond!.ids, 1);
    const mean = (a: Float32Array) => a.reduce((s, x) => s + x, 0) / a.length;
    for (const [got, plain, weights] of [
      [e.condStates, raw, e.cond.weights],
      [e.uncondStates!, rawNeg, e.uncond!.weights],
    ] as const) {
      expect(got.length).toBe(77 * hidden);
      expect(mean(got)).toBeCloseTo(mean(plain), 5);
      const k = mean(plain) / mean(plain.map((x, i) => x * weights[Math.floor(i / hidden)]));
      let maxErr = 0;
      for (let i = 0; i < got.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i] - plain[i] * weights[Math.floor(i / hidden)] * k));
      expect(maxErr).toBeLessThan(1e-4);
    }
    expect(Array.from(e.cond.weights.slice(0, 6)).map((w) => Math.round(w * 100) / 100)).toEqual([1, 1, 1, 1.5, 1.5, 1]);
  });

  it("pads negative and positive prompts to the same number of chunks", async () => {
    const long = "赤い丸と青い四角".repeat(35); // 3 chunks
    const a = await encodeExtendedPrompts(model, long, "黒い");
    expect(a.cond.chunks).toHaveLength(3);
    expect(a.uncond!.chunks.map((c) => c.end)).toEqual(["end", "padding", "padding"]);
    expect(a.condStates.length).toBe(3 * 77 * model.textHiddenSize);
    expect(a.uncondStates!.length).toBe(a.condStates.length);
    expect(a.length).toBe(3 * 77);
    const b = await encodeExtendedPrompts(model, "黒い", long);
    expect(b.cond.chunks.map((c) => c.end)).toEqual(["end", "padding", "padding"]);
    expect(b.uncond!.chunks).toHaveLength(3);
    // chunk states are each chunk encoded on its own: the padding chunks are the states of ""
    const empty = await model.encodeText(model.tokenizer.tokenize("").ids, 1);
    const per = 77 * model.textHiddenSize;
    let maxErr = 0;
    for (let i = 0; i < per; i++) maxErr = Math.max(maxErr, Math.abs(a.uncondStates![2 * per + i] - empty[i]));
    expect(maxErr).toBeLessThan(1e-5);
    // without guidance only the prompt is encoded
    const c = await encodeExtendedPrompts(model, long);
    expect(c.uncond).toBeUndefined();
    expect(c.condStates.length).toBe(a.condStates.length);
  });

  it("refuses a prompt longer than the UNet takes, before any compute", async () => {
    const huge = "赤い丸と青い四角".repeat(1300); // about 65 chunks
    expect(model.tokenize(huge, { mode: "extended" }).chunks.length).toBeGreaterThan(MAX_PROMPT_CHUNKS);
    const error = await encodeExtendedPrompts(model, "赤い丸", huge).catch((e: unknown) => e);
    expect(isJsdError(error) && error.code === "JSD_INVALID_ARGUMENT").toBe(true);
    expect((error as Error).message).toMatch(/negativePrompt is too long/);
  });
});

describe("generate() with promptMode", () => {
  const base = { width: 64, height: 64, seed: 7 } as const;

  function input(prompt: string, extra: Partial<DenoiseInput> = {}): DenoiseInput {
    const o = resolveOptions({ prompt, ...base, steps: 1 });
    return { ...o, width: 64, height: 64, initImage: undefined, mask: undefined, ...extra };
  }

  it("validates promptMode; the default is reference", () => {
    expect(resolveOptions({ prompt: "a" }).promptMode).toBe("reference");
    expect(resolveOptions({ prompt: "a", promptMode: "extended" }).promptMode).toBe("extended");
    expect(() => resolveOptions({ prompt: "a", promptMode: "Extended" as "extended" })).toThrow(RangeError);
    expect(() => resolveOptions({ prompt: "a", promptMode: 1 as unknown as "extended" })).toThrow(TypeError);
  });

  it("reference mode reads syntax as plain text and truncates, as before", async () => {
    const prompt = "(赤い丸:1.5) BREAK " + "青い四角、".repeat(30);
    const trace = await denoise(model, input(prompt));
    expect(trace.promptMode).toBe("reference");
    expect(trace.promptChunks).toBe(1);
    expect(trace.promptIds).toEqual(model.tokenizer.tokenize(prompt).ids);
    expect(trace.droppedTokens).toBe(model.tokenizer.tokenize(prompt).droppedTokens);
    expect(trace.droppedTokens).toBeGreaterThan(0);
    expect(trace.textStates.length).toBe(2 * 77 * model.textHiddenSize);
    // no promptMode at all (as the parity runner calls denoise) is reference mode
    const { promptMode: _, ...noMode } = input(prompt);
    expect((await denoise(model, noMode)).textStates).toEqual(trace.textStates);
  });

  it("extended mode feeds the UNet every chunk, uncond and cond of one length", async () => {
    const prompt = "赤い丸と青い四角".repeat(35);
    const trace = await denoise(model, input(prompt, { promptMode: "extended", negativePrompt: "黒い", numImages: 2 }));
    expect(trace.promptMode).toBe("extended");
    expect(trace.promptChunks).toBe(3);
    expect(trace.droppedTokens).toBe(0);
    expect(trace.promptIds.length).toBe(3 * 77);
    expect(trace.negativeIds!.length).toBe(3 * 77);
    expect(trace.textStates.length).toBe(2 * 2 * 3 * 77 * model.textHiddenSize);
  });

  it("a short prompt without syntax gives the same image in both modes", async () => {
    const [ref] = await model.generate({ ...base, prompt: "白い背景に赤い丸", steps: 4 });
    const [ext] = await model.generate({ ...base, prompt: "白い背景に赤い丸", steps: 4, promptMode: "extended" });
    expect(ext.rgba).toEqual(ref.rgba);
    expect(ref.promptMode).toBe("reference");
    expect(ext.promptMode).toBe("extended");
  });

  it("puts promptMode and droppedTokens in the result and the PNG metadata", async () => {
    const prompt = "赤い丸と青い四角、".repeat(20);
    const [ref] = await model.generate({ ...base, prompt, steps: 1 });
    const [ext] = await model.generate({ ...base, prompt, steps: 1, promptMode: "extended" });
    expect(ref.droppedTokens).toBeGreaterThan(0);
    expect(ext.droppedTokens).toBe(0);
    expect(ref.parameters).toMatchObject({ promptMode: "reference", droppedTokens: ref.droppedTokens });
    expect(ext.parameters).toMatchObject({ promptMode: "extended", droppedTokens: 0, promptChunks: 2 });
    const refText = readPngText(ref.png);
    const extText = readPngText(ext.png);
    expect(JSON.parse(refText.jsd)).toMatchObject({ promptMode: "reference", droppedTokens: ref.droppedTokens });
    expect(JSON.parse(extText.jsd)).toMatchObject({ promptMode: "extended", droppedTokens: 0, promptChunks: 2 });
    expect(refText.parameters).not.toMatch(/Prompt mode/);
    expect(refText.parameters).toMatch(/Truncated tokens: \d+/);
    expect(extText.parameters).toMatch(/Prompt mode: extended, Prompt chunks: 2/);
    expect(extText.parameters).not.toMatch(/Truncated tokens/);
  });
});

// ---- acceptance: a subject after token 77 ---------------------------------------------------

const PALETTE = SHAPE_PALETTE;

/** Nearest palette colour per pixel (within 80); background = the 4-pixel border's most common, foreground = the most common other colour inside. */
function colours(rgba: Uint8Array, size = 64): { background?: string; foreground?: string; foregroundShare: number } {
  const count = (into: Map<string, number>, name: string) => into.set(name, (into.get(name) ?? 0) + 1);
  const border = new Map<string, number>();
  const inner = new Map<string, number>();
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = 4 * (y * size + x);
      let best: string | undefined;
      let bestD = 80 * 80;
      for (const [name, [r, g, b]] of Object.entries(PALETTE)) {
        const d = (rgba[i] - r) ** 2 + (rgba[i + 1] - g) ** 2 + (rgba[i + 2] - b) ** 2;
        if (d < bestD) [best, bestD] = [name, d];
      }
      if (best) count(x < 4 || y < 4 || x >= size - 4 || y >= size - 4 ? border : inner, best);
    }
  }
  const top = (m: Map<string, number>, skip?: string) => [...m].filter(([k]) => k !== skip).sort((a, b) => b[1] - a[1])[0];
  const background = top(border)?.[0];
  const fg = top(inner, background);
  return { background, foreground: fg?.[0], foregroundShare: (fg?.[1] ?? 0) / (size * size) };
}

describe("acceptance: a subject after token 77 (embedded model, 64×64, PNDM 20 steps, guidance 7.5)", () => {
  it("is drawn in extended mode and not in reference mode", async () => {
    const t = model.tokenize(LONG_PROMPT);
    expect(t.count).toBeGreaterThan(77);
    expect(t.pieces.slice(76)).toEqual(["青い", "背景", "に", "黄色い", "星"]); // tokens 77–81: the subject
    expect(t.droppedTokens).toBe(5);
    const options = { prompt: LONG_PROMPT, width: 64, height: 64, steps: 20, scheduler: "pndm", guidanceScale: 7.5 } as const;
    for (const seed of [1, 2]) {
      const [ref] = await model.generate({ ...options, seed });
      const [ext] = await model.generate({ ...options, seed, promptMode: "extended" });
      const r = colours(ref.rgba);
      const e = colours(ext.rgba);
      expect(e, `seed ${seed}`).toMatchObject({ background: "blue", foreground: "yellow" });
      expect(e.foregroundShare).toBeGreaterThan(0.05);
      expect(r.background === "blue" && r.foreground === "yellow", `seed ${seed}: reference drew ${JSON.stringify(r)}`).toBe(false);
      expect(r.foreground).not.toBe("yellow");
    }
  }, 120_000);

  it("the same with a longer filler and BREAK before the subject", async () => {
    const prompt = "イラスト、".repeat(50) + "BREAK " + SUBJECT; // subject from token 102
    expect(model.tokenize(prompt).count).toBeGreaterThan(100);
    const options = { prompt, width: 64, height: 64, steps: 20, seed: 3 } as const;
    const [ref] = await model.generate(options);
    const [ext] = await model.generate({ ...options, promptMode: "extended" });
    expect(colours(ext.rgba)).toMatchObject({ background: "blue", foreground: "yellow" });
    expect(colours(ref.rgba).foreground).not.toBe("yellow");
  }, 60_000);
});
