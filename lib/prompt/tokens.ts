// Tokenizing a prompt in "extended" mode: the parsed, weighted text becomes tokens with weights,
// split into chunks of 75 tokens, each wrapped as the reference tokenizer wraps a prompt (ids,
// `</s>`, `<pad>` up to 77), so that each chunk is one ordinary text-encoder input.
//
// Tokens of weighted text. Each BREAK-separated segment of the prompt is tokenized as one plain
// text (the syntax taken out) with the tokenizer's own `encodeRaw`, so a prompt without syntax
// gives exactly the reference's pieces, sentencepiece's dummy prefix "▁" only at the start of
// the segment, and weights never change how a text is cut into pieces. Each piece then takes the
// weight of the fragment of text it came from: fragment boundaries are located in the normalised
// text (the pieces joined) by tokenizing the text up to each boundary. When a piece straddles a
// boundary (the vocabulary has a piece spanning it), it takes the weight of the fragment holding
// most of its characters, on a tie the stronger weight (largest |ln w|). With JSD-style
// vocabularies pieces rarely cross word boundaries, so "白い背景に(赤い丸:1.3)" weights exactly
// 赤い and 丸. After a BREAK the next segment starts afresh, with its own "▁", like a new prompt.
//
// Chunks. Tokens fill chunks of maxLength − 2 = 75 (the size the common tools use; of the 77
// ids, one goes to `</s>`, at least one to padding). Chunk boundaries (A1111's rule, with JSD's
// commas; a comma is a piece that is only 「、」「，」「,」 or 「。」, with or without "▁"):
//   - a BREAK ends the current chunk (a BREAK on an empty chunk, e.g. two in a row or one at the
//     start, does nothing);
//   - when a chunk is full and the next token is a comma, the comma still goes into the chunk as
//     its 76th token (77 ids with `</s>`, the reference tokenizer's own capacity): the chunk ends
//     at the end of a phrase and the next one does not open with a comma;
//   - when a chunk is full and one of its last 20 tokens is a comma, the chunk ends after the
//     last such comma and the tokens after it move to the next chunk, so a phrase of up to 19
//     tokens is not cut in two;
//   - otherwise a full chunk ends where it is.
// Every chunk is a text-encoder input of its own, like A1111's chunks that each start with
// CLIP's start token. The JSD tokenizer has no start token; a text starts with sentencepiece's
// dummy prefix "▁" instead, so a chunk that opens in the middle of a segment gets it: its first
// piece X becomes "▁X" when the vocabulary has that piece, otherwise a "▁" piece goes in front
// (as sentencepiece does before a character that has no "▁" form); pieces that already start
// with "▁" (a word after a blank) and special tokens stay as they are. The models were trained
// on captions that all start that way; without it, a chunk that starts in mid-text is read
// poorly (the embedded model ignores a subject that opens a chunk without "▁").
import type { JsdTokenizer, TokenizedPrompt } from "./tokenizer.js";
import { parsePrompt, splitAtBreaks, type PromptPart } from "./parse.js";

export type PromptMode = "reference" | "extended";
export const PROMPT_MODES: readonly PromptMode[] = Object.freeze(["reference", "extended"]);

/** How far back (in tokens) a full chunk may end early at a comma. */
export const COMMA_BACKTRACK = 20;

/** Pieces that count as commas for chunk boundaries (after an optional leading "▁"). */
const COMMA_CHARS = new Set(["、", "，", ",", "。"]);

export interface WeightedToken {
  id: number;
  piece: string;
  weight: number;
  /** Set on the dummy prefix given to a chunk that starts inside a segment (a `▁` piece put in front, or `X` made `▁X`). */
  dummyPrefix?: true;
}

/** Why a chunk ends. */
export type ChunkEnd = "full" | "comma" | "break" | "end" | "padding";

export interface PromptChunk {
  /** The text-encoder input: the tokens' ids, `</s>`, padding (maxLength ids). */
  ids: Int32Array;
  /** One weight per id: the tokens' weights, 1 for `</s>` and padding. */
  weights: Float32Array;
  /** The prompt tokens in this chunk: at most maxLength − 2 (75), or one more when that one is a comma. */
  tokens: WeightedToken[];
  /** Position of the chunk's first token among all the prompt's tokens. */
  start: number;
  end: ChunkEnd;
}

export interface ExtendedPromptTokens {
  mode: "extended";
  /**
   * All the prompt's pieces, in order, syntax taken out, no `</s>` (as `TokenizedPrompt.pieces`),
   * with the dummy prefixes that chunks opening mid-text get (see `WeightedToken.dummyPrefix`).
   */
  pieces: string[];
  /** The chunks' ids one after the other: chunks × maxLength ids, what the text encoder takes. */
  ids: Int32Array;
  /** One weight per id of `ids`. */
  weights: Float32Array;
  chunks: PromptChunk[];
  /** Prompt tokens (`</s>` and padding not counted). */
  count: number;
  /** Tokens that fit in the chunks used: chunks × (maxLength − 2). */
  limit: number;
  /** Tokens per chunk (maxLength − 2 = 75). */
  chunkLength: number;
  /** Always 0: extended mode drops nothing. */
  droppedTokens: 0;
  truncated: false;
  /** The parsed prompt. */
  parts: PromptPart[];
}

/** `JsdTokenizer.tokenize`'s result, plus the mode and the count against the 77-token limit. */
export interface ReferencePromptTokens extends TokenizedPrompt {
  mode: "reference";
  /** Prompt tokens (`</s>` not counted), before truncation. */
  count: number;
  /** Tokens that fit: maxLength − 1 (76; the last id is `</s>`). */
  limit: number;
}

export type PromptTokens = ReferencePromptTokens | ExtendedPromptTokens;

export interface TokenizeOptions {
  /** "reference" (default): rinna's tokenizer, 77 ids, truncated. "extended": syntax, chunks. */
  mode?: PromptMode;
}

function isComma(piece: string): boolean {
  const body = piece.startsWith("▁") ? piece.slice(1) : piece;
  if (body.length === 0) return false;
  for (const ch of body) if (!COMMA_CHARS.has(ch)) return false;
  return true;
}

/** How far a weight is from neutral: |ln |w||, infinite for 0. */
function strength(weight: number): number {
  return Math.abs(Math.log(Math.abs(weight)));
}

/** Reference mode: the tokenizer's result with the mode and the count against the limit. */
export function tokenizeReference(tokenizer: JsdTokenizer, text: string): ReferencePromptTokens {
  const t = tokenizer.tokenize(text);
  return { ...t, mode: "reference", count: t.pieces.length, limit: tokenizer.config.maxLength - 1 };
}

/** Tokens of one BREAK-free segment: its plain text tokenized as a whole, weights by fragment. */
export function tokenizeSegment(tokenizer: JsdTokenizer, fragments: readonly { text: string; weight: number }[]): WeightedToken[] {
  const plain = fragments.map((f) => f.text).join("");
  const raw = tokenizer.encodeRaw(plain);
  const tokens = raw.ids.map((id, i) => ({ id, piece: raw.pieces[i], weight: 1 }));
  if (fragments.length === 0) return tokens;
  if (fragments.every((f) => f.weight === fragments[0].weight)) {
    for (const t of tokens) t.weight = fragments[0].weight;
    return tokens;
  }
  // ends[i]: where fragment i ends in the normalised text (= the pieces joined).
  const ends: number[] = [];
  let prefix = "";
  for (let i = 0; i < fragments.length - 1; i++) {
    prefix += fragments[i].text;
    const len = tokenizer.encodeRaw(prefix).pieces.reduce((n, p) => n + p.length, 0);
    ends.push(Math.max(len, ends[i - 1] ?? 0));
  }
  ends.push(Infinity);
  let pos = 0;
  let frag = 0; // first fragment that can overlap the current piece
  for (const t of tokens) {
    const start = pos;
    const end = pos + t.piece.length;
    pos = end;
    while (frag < fragments.length - 1 && ends[frag] <= start) frag++;
    let best = frag;
    let bestOverlap = -1;
    for (let k = frag; k < fragments.length; k++) {
      const from = k === 0 ? 0 : ends[k - 1];
      if (from >= end && k > frag) break;
      const overlap = Math.min(end, ends[k]) - Math.max(start, from);
      if (overlap > bestOverlap || (overlap === bestOverlap && strength(fragments[k].weight) > strength(fragments[best].weight))) {
        best = k;
        bestOverlap = overlap;
      }
    }
    t.weight = fragments[best].weight;
  }
  return tokens;
}

function wrapChunk(tokenizer: JsdTokenizer, tokens: WeightedToken[], start: number, end: ChunkEnd): PromptChunk {
  const { ids, length } = tokenizer.toInputIds(tokens.map((t) => t.id));
  const weights = new Float32Array(ids.length).fill(1);
  // toInputIds keeps every id here (chunks are shorter than maxLength) and adds `</s>` after them.
  for (let i = 0; i < Math.min(tokens.length, length); i++) weights[i] = tokens[i].weight;
  return { ids, weights, tokens, start, end };
}

/**
 * The dummy prefix for a chunk that starts inside a segment: the token as the start of a text
 * would be tokenized. `X` becomes `▁X` when the vocabulary has that piece, otherwise a `▁` piece
 * goes in front (as sentencepiece does before a character without a `▁` form). Tokens that
 * already start with `▁` and special tokens (`</s>` …) are left as they are.
 */
function withDummyPrefix(tokenizer: JsdTokenizer, token: WeightedToken): WeightedToken[] {
  const sp = tokenizer.sentencePiece;
  if (token.piece.startsWith("▁") || Object.hasOwn(tokenizer.config.specialTokens, token.piece)) return [token];
  const unk = sp.specialIds.unk;
  if (token.id !== tokenizer.config.unkId) {
    const id = sp.pieceToId("▁" + token.piece);
    if (id !== unk && id >= 0) return [{ ...token, id, piece: "▁" + token.piece, dummyPrefix: true }];
  }
  const space = sp.pieceToId("▁");
  if (space === unk || space < 0) return [token];
  return [{ id: space, piece: "▁", weight: token.weight, dummyPrefix: true }, token];
}

/** Splits weighted tokens (with BREAKs as null) into chunks; see the rules at the top of the file. */
export function chunkTokens(
  tokenizer: JsdTokenizer,
  items: readonly (WeightedToken | null)[],
  options: { chunkLength?: number; commaBacktrack?: number } = {},
): PromptChunk[] {
  const chunkLength = options.chunkLength ?? Math.max(1, tokenizer.config.maxLength - 2);
  const backtrack = options.commaBacktrack ?? COMMA_BACKTRACK;
  const chunks: PromptChunk[] = [];
  let current: WeightedToken[] = [];
  let start = 0;
  let lastComma = -1;
  // The next token opens a chunk in the middle of a segment and takes the dummy prefix.
  let continuation = false;
  const close = (end: ChunkEnd, keep = current.length) => {
    const tail = current.slice(keep);
    chunks.push(wrapChunk(tokenizer, current.slice(0, keep), start, end));
    start += keep;
    current = tail.length > 0 ? [...withDummyPrefix(tokenizer, tail[0]), ...tail.slice(1)] : [];
    continuation = end !== "break" && tail.length === 0;
    lastComma = -1;
  };
  for (const item of items) {
    if (item === null) {
      if (current.length > 0) close("break");
      continuation = false;
      continue;
    }
    if (current.length >= chunkLength) {
      const comma = isComma(item.piece);
      if (comma && current.length === chunkLength && chunkLength + 1 < tokenizer.config.maxLength) {
        // A comma right after a full chunk ends it as its extra last token.
        current.push(item);
        close("comma");
        continue;
      }
      if (lastComma >= 0 && lastComma + 1 < current.length && current.length - lastComma <= backtrack) close("comma", lastComma + 1);
      else close(lastComma === current.length - 1 ? "comma" : "full");
    }
    if (isComma(item.piece)) lastComma = current.length;
    if (continuation && current.length === 0) current.push(...withDummyPrefix(tokenizer, item));
    else current.push(item);
    continuation = false;
  }
  if (current.length > 0 || chunks.length === 0) close("end");
  return chunks;
}

function assemble(chunks: PromptChunk[], parts: PromptPart[], chunkLength: number): ExtendedPromptTokens {
  const per = chunks[0].ids.length;
  const ids = new Int32Array(chunks.length * per);
  const weights = new Float32Array(chunks.length * per);
  chunks.forEach((c, i) => {
    ids.set(c.ids, i * per);
    weights.set(c.weights, i * per);
  });
  const pieces = chunks.flatMap((c) => c.tokens.map((t) => t.piece));
  return {
    mode: "extended",
    pieces,
    ids,
    weights,
    chunks,
    count: pieces.length,
    limit: chunks.length * chunkLength,
    chunkLength,
    droppedTokens: 0,
    truncated: false,
    parts,
  };
}

/**
 * Extended mode: parses the prompt (emphasis, weights, BREAK, full-width syntax), tokenizes it
 * and splits it into chunks of 75 tokens, each wrapped to the reference's 77 ids.
 */
export function tokenizeExtended(tokenizer: JsdTokenizer, text: string, options: { commaBacktrack?: number } = {}): ExtendedPromptTokens {
  const parts = parsePrompt(text);
  const items: (WeightedToken | null)[] = [];
  splitAtBreaks(parts).forEach((segment, i) => {
    if (i > 0) items.push(null);
    items.push(...tokenizeSegment(tokenizer, segment));
  });
  const chunkLength = Math.max(1, tokenizer.config.maxLength - 2);
  return assemble(chunkTokens(tokenizer, items, { chunkLength, commaBacktrack: options.commaBacktrack }), parts, chunkLength);
}

/**
 * The same tokens padded with empty chunks (the encoding of "": `</s>` then padding, weights 1)
 * to `count` chunks, as A1111 pads the shorter of the positive and negative prompts.
 */
export function padChunks(tokenizer: JsdTokenizer, tokens: ExtendedPromptTokens, count: number): ExtendedPromptTokens {
  if (tokens.chunks.length >= count) return tokens;
  const chunks = [...tokens.chunks];
  const at = tokens.count;
  while (chunks.length < count) chunks.push(wrapChunk(tokenizer, [], at, "padding"));
  return assemble(chunks, tokens.parts, tokens.chunkLength);
}

/** Tokenizes in either mode. */
export function tokenizePrompt(tokenizer: JsdTokenizer, text: string, mode: PromptMode = "reference"): PromptTokens {
  return mode === "extended" ? tokenizeExtended(tokenizer, text) : tokenizeReference(tokenizer, text);
}
