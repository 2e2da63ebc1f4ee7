// The JSD prompt tokenizer: transformers 4.25's slow `T5Tokenizer` as rinna's pipelines set
// it up (`do_lower_case=True`, `model_max_length=77`), on top of a raw sentencepiece model.
//
// What `tokenizer(text, padding="max_length", max_length=77, truncation=True)` does, step by
// step (see test/fixtures/reference/README.md, "tokenizer.json"):
//
//  1. Lower-casing. transformers runs `re.sub(r"(</s>|<unk>|<pad>)|(.+?)", ...)` and applies
//     Python's `str.lower()` to each single matched character outside the special tokens
//     (there is never a final-sigma context: "ΣΑΣ" becomes "σασ"). It happens before the
//     special-token split, so "<UNK>" and "</S>" become special tokens too. `str.lower()` is
//     Python 3.11's, i.e. Unicode 14.0 (Debian bookworm, the reference's platform). JS's
//     `toLowerCase()` follows the ICU of the running Node (Unicode 15 to 17), which lower-cases
//     about 55 more characters, and applies the final-sigma rule; so the mapping is a table here.
//  2. Special-token split on the literal tokens ("</s>", "<unk>", "<pad>"), with Python
//     `str.strip()` whitespace (not JS's `trim()` set: no U+FEFF, but U+001C..U+001F and U+0085)
//     removed from the neighbouring chunks on both sides; chunks left empty are dropped.
//  3. Each chunk goes through sentencepiece's own `encode` (nmt_nfkc, extra whitespace removed,
//     dummy prefix "▁" for every chunk, runs of unknown characters merged into one `<unk>`
//     piece whose text is the surface). Piece ids are `piece_to_id(piece)`, as T5Tokenizer's
//     `convert_tokens_to_ids` does.
//  4. Truncation to maxLength - 1 ids when the ids plus `</s>` would not fit, `</s>` appended
//     unless the ids already end with it, right padding with padId to maxLength.
//
// Input that the reference cannot take: a string with a lone UTF-16 surrogate (Python's
// sentencepiece raises UnicodeEncodeError: "surrogates not allowed") throws a JsdError with code
// JSD_INVALID_ARGUMENT. NUL and other control characters are passed on as the reference does:
// sentencepiece's nmt_nfkc drops most C0 controls and has no piece for NUL, which becomes <unk>.
import { JsdError, JsdTypeError, JsdRangeError } from "../errors.js";
import { SentencePieceModel } from "./sentencepiece.js";
import { loneSurrogateIndex } from "./unicode.js";

export interface TokenizerConfig {
  /** Id used to pad to maxLength (JSD: 0, `<pad>`). */
  padId: number;
  /** Id appended at the end (JSD: 1, `</s>`). */
  eosId: number;
  /** Id of unknown pieces (JSD: 2, `<unk>`). */
  unkId: number;
  /** Length of every `ids` array, `</s>` included (JSD: 77). */
  maxLength: number;
  /** Lower-case the text first, as Python 3.11's `str.lower()` per code point (JSD: true). */
  doLowerCase: boolean;
  /**
   * Literal strings that are never split and become one id each. Default:
   * `{ "</s>": eosId, "<unk>": unkId, "<pad>": padId }`, T5Tokenizer's special tokens.
   */
  specialTokens?: Readonly<Record<string, number>>;
}

export interface TokenizedPrompt {
  /** maxLength ids: what the text encoder takes, right-padded with padId. */
  ids: Int32Array;
  /** `tokenizer.tokenize(text)`: all pieces before truncation, special tokens as their text, no `</s>` added. */
  pieces: string[];
  /** Ids before padding, `</s>` included (the reference's `n_tokens_before_padding`). */
  length: number;
  /** Length of the untruncated id list, `</s>` included unless the text already ended in one. */
  untruncatedLength: number;
  /** How many of the text's ids did not fit (0 unless truncated). */
  droppedTokens: number;
  /** The untruncated id list is longer than maxLength (the reference's `truncated`). */
  truncated: boolean;
}

/** The untruncated tokenization of a text: one id per piece, no `</s>` added, no padding. */
export interface RawTokens {
  ids: number[];
  pieces: string[];
}

/** JSD's settings (tiny-jsd and rinna/japanese-stable-diffusion use the same vocabulary layout). */
export const JSD_TOKENIZER_CONFIG: Readonly<TokenizerConfig> = Object.freeze({
  padId: 0,
  eosId: 1,
  unkId: 2,
  maxLength: 77,
  doLowerCase: true,
});

// ---- Python 3.11 (Unicode 14.0) str.lower(), one code point at a time --------------------------

// Runs of [first code point, count, stride, delta]: code points first + k*stride (k < count)
// lower-case to themselves + delta. Generated from CPython 3.11.7 (unicodedata 14.0.0) by
// comparing chr(c).lower() with chr(c) for every code point. U+0130 (İ) is the only code point
// whose lower case is two code points long; it is handled on its own.
// prettier-ignore
const LOWER_RUNS: readonly number[] = [
  0x41,26,1,32, 0xc0,23,1,32, 0xd8,7,1,32, 0x100,24,2,1, 0x132,3,2,1, 0x139,8,2,1, 0x14a,23,2,1,
  0x178,1,1,-121, 0x179,3,2,1, 0x181,1,1,210, 0x182,2,2,1, 0x186,1,1,206, 0x187,1,1,1,
  0x189,2,1,205, 0x18b,1,1,1, 0x18e,1,1,79, 0x18f,1,1,202, 0x190,1,1,203, 0x191,1,1,1,
  0x193,1,1,205, 0x194,1,1,207, 0x196,1,1,211, 0x197,1,1,209, 0x198,1,1,1, 0x19c,1,1,211,
  0x19d,1,1,213, 0x19f,1,1,214, 0x1a0,3,2,1, 0x1a6,1,1,218, 0x1a7,1,1,1, 0x1a9,1,1,218,
  0x1ac,1,1,1, 0x1ae,1,1,218, 0x1af,1,1,1, 0x1b1,2,1,217, 0x1b3,2,2,1, 0x1b7,1,1,219,
  0x1b8,1,1,1, 0x1bc,1,1,1, 0x1c4,1,1,2, 0x1c5,1,1,1, 0x1c7,1,1,2, 0x1c8,1,1,1, 0x1ca,1,1,2,
  0x1cb,9,2,1, 0x1de,9,2,1, 0x1f1,1,1,2, 0x1f2,2,2,1, 0x1f6,1,1,-97, 0x1f7,1,1,-56, 0x1f8,20,2,1,
  0x220,1,1,-130, 0x222,9,2,1, 0x23a,1,1,10795, 0x23b,1,1,1, 0x23d,1,1,-163, 0x23e,1,1,10792,
  0x241,1,1,1, 0x243,1,1,-195, 0x244,1,1,69, 0x245,1,1,71, 0x246,5,2,1, 0x370,2,2,1, 0x376,1,1,1,
  0x37f,1,1,116, 0x386,1,1,38, 0x388,3,1,37, 0x38c,1,1,64, 0x38e,2,1,63, 0x391,17,1,32,
  0x3a3,9,1,32, 0x3cf,1,1,8, 0x3d8,12,2,1, 0x3f4,1,1,-60, 0x3f7,1,1,1, 0x3f9,1,1,-7, 0x3fa,1,1,1,
  0x3fd,3,1,-130, 0x400,16,1,80, 0x410,32,1,32, 0x460,17,2,1, 0x48a,27,2,1, 0x4c0,1,1,15,
  0x4c1,7,2,1, 0x4d0,48,2,1, 0x531,38,1,48, 0x10a0,38,1,7264, 0x10c7,1,1,7264, 0x10cd,1,1,7264,
  0x13a0,80,1,38864, 0x13f0,6,1,8, 0x1c90,43,1,-3008, 0x1cbd,3,1,-3008, 0x1e00,75,2,1,
  0x1e9e,1,1,-7615, 0x1ea0,48,2,1, 0x1f08,8,1,-8, 0x1f18,6,1,-8, 0x1f28,8,1,-8, 0x1f38,8,1,-8,
  0x1f48,6,1,-8, 0x1f59,4,2,-8, 0x1f68,8,1,-8, 0x1f88,8,1,-8, 0x1f98,8,1,-8, 0x1fa8,8,1,-8,
  0x1fb8,2,1,-8, 0x1fba,2,1,-74, 0x1fbc,1,1,-9, 0x1fc8,4,1,-86, 0x1fcc,1,1,-9, 0x1fd8,2,1,-8,
  0x1fda,2,1,-100, 0x1fe8,2,1,-8, 0x1fea,2,1,-112, 0x1fec,1,1,-7, 0x1ff8,2,1,-128,
  0x1ffa,2,1,-126, 0x1ffc,1,1,-9, 0x2126,1,1,-7517, 0x212a,1,1,-8383, 0x212b,1,1,-8262,
  0x2132,1,1,28, 0x2160,16,1,16, 0x2183,1,1,1, 0x24b6,26,1,26, 0x2c00,48,1,48, 0x2c60,1,1,1,
  0x2c62,1,1,-10743, 0x2c63,1,1,-3814, 0x2c64,1,1,-10727, 0x2c67,3,2,1, 0x2c6d,1,1,-10780,
  0x2c6e,1,1,-10749, 0x2c6f,1,1,-10783, 0x2c70,1,1,-10782, 0x2c72,1,1,1, 0x2c75,1,1,1,
  0x2c7e,2,1,-10815, 0x2c80,50,2,1, 0x2ceb,2,2,1, 0x2cf2,1,1,1, 0xa640,23,2,1, 0xa680,14,2,1,
  0xa722,7,2,1, 0xa732,31,2,1, 0xa779,2,2,1, 0xa77d,1,1,-35332, 0xa77e,5,2,1, 0xa78b,1,1,1,
  0xa78d,1,1,-42280, 0xa790,2,2,1, 0xa796,10,2,1, 0xa7aa,1,1,-42308, 0xa7ab,1,1,-42319,
  0xa7ac,1,1,-42315, 0xa7ad,1,1,-42305, 0xa7ae,1,1,-42308, 0xa7b0,1,1,-42258, 0xa7b1,1,1,-42282,
  0xa7b2,1,1,-42261, 0xa7b3,1,1,928, 0xa7b4,8,2,1, 0xa7c4,1,1,-48, 0xa7c5,1,1,-42307,
  0xa7c6,1,1,-35384, 0xa7c7,2,2,1, 0xa7d0,1,1,1, 0xa7d6,2,2,1, 0xa7f5,1,1,1, 0xff21,26,1,32,
  0x10400,40,1,40, 0x104b0,36,1,40, 0x10570,11,1,39, 0x1057c,15,1,39, 0x1058c,7,1,39,
  0x10594,2,1,39, 0x10c80,51,1,64, 0x118a0,32,1,32, 0x16e40,32,1,32, 0x1e900,34,1,34,
];

let lowerTable: Map<number, number> | undefined;

function lowerMap(): Map<number, number> {
  if (lowerTable) return lowerTable;
  const table = new Map<number, number>();
  for (let i = 0; i < LOWER_RUNS.length; i += 4) {
    const [first, count, stride, delta] = [LOWER_RUNS[i], LOWER_RUNS[i + 1], LOWER_RUNS[i + 2], LOWER_RUNS[i + 3]];
    for (let k = 0; k < count; k++) table.set(first + k * stride, first + k * stride + delta);
  }
  lowerTable = table;
  return table;
}

/**
 * Python 3.11's `str.lower()` applied to each code point on its own (no final sigma), as
 * transformers' `do_lower_case` does. Independent of the ICU/Unicode version of the running Node.
 */
export function pythonLowerPerCodePoint(text: string): string {
  const table = lowerMap();
  let out = "";
  let changed = false;
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x80) {
      if (cp >= 0x41 && cp <= 0x5a) {
        out += String.fromCharCode(cp + 32);
        changed = true;
      } else out += ch;
      continue;
    }
    if (cp === 0x130) {
      out += "i\u0307";
      changed = true;
      continue;
    }
    const lower = table.get(cp);
    if (lower === undefined) out += ch;
    else {
      out += String.fromCodePoint(lower);
      changed = true;
    }
  }
  return changed ? out : text;
}

// Python's str.isspace(): bidirectional class WS, B or S, or category Zs (Unicode 14.0).
const PY_WHITESPACE = new Set<number>([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001,
  0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f,
  0x205f, 0x3000,
]);

/** Python's `str.lstrip()` with no argument. (All of Python's whitespace is in the BMP.) */
export function pythonLstrip(text: string): string {
  let start = 0;
  while (start < text.length && PY_WHITESPACE.has(text.charCodeAt(start))) start++;
  return text.slice(start);
}

/** Python's `str.rstrip()` with no argument. */
export function pythonRstrip(text: string): string {
  let end = text.length;
  while (end > 0 && PY_WHITESPACE.has(text.charCodeAt(end - 1))) end--;
  return text.slice(0, end);
}


function checkId(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 0x7fffffff) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `tokenizer config: ${name} must be a non-negative integer, got ${String(value)}`);
  }
  return value;
}

// ---- the tokenizer ----------------------------------------------------------------------------

export class JsdTokenizer {
  readonly sentencePiece: SentencePieceModel;
  readonly config: Readonly<Required<TokenizerConfig>>;
  readonly #special: Map<string, number>;
  /** Special tokens, longest first (so that a token that starts another one cannot shadow it). */
  readonly #specialList: string[];
  readonly #spUnk: number;

  constructor(sp: SentencePieceModel, config: TokenizerConfig = JSD_TOKENIZER_CONFIG) {
    if (!(sp instanceof SentencePieceModel)) throw new JsdTypeError("sp must be a SentencePieceModel");
    if (config === null || typeof config !== "object") throw new JsdTypeError("config must be an object");
    const padId = checkId("padId", config.padId);
    const eosId = checkId("eosId", config.eosId);
    const unkId = checkId("unkId", config.unkId);
    const maxLength = config.maxLength;
    if (typeof maxLength !== "number" || !Number.isInteger(maxLength) || maxLength < 2 || maxLength > 1 << 20) {
      throw new JsdError("JSD_INVALID_ARGUMENT", `tokenizer config: maxLength must be an integer from 2, got ${String(maxLength)}`);
    }
    if (typeof config.doLowerCase !== "boolean") throw new JsdTypeError("tokenizer config: doLowerCase must be a boolean");
    const specialTokens = config.specialTokens ?? { "</s>": eosId, "<unk>": unkId, "<pad>": padId };
    if (specialTokens === null || typeof specialTokens !== "object") {
      throw new JsdTypeError("tokenizer config: specialTokens must be an object of string -> id");
    }
    this.#special = new Map();
    for (const [token, id] of Object.entries(specialTokens)) {
      if (token.length === 0) throw new JsdError("JSD_INVALID_ARGUMENT", "tokenizer config: a special token cannot be empty");
      this.#special.set(token, checkId(`specialTokens[${JSON.stringify(token)}]`, id));
    }
    this.#specialList = [...this.#special.keys()].sort((a, b) => b.length - a.length);
    this.#spUnk = sp.specialIds.unk;
    this.sentencePiece = sp;
    this.config = Object.freeze({
      padId,
      eosId,
      unkId,
      maxLength,
      doLowerCase: config.doLowerCase,
      specialTokens: Object.freeze(Object.fromEntries(this.#special)),
    });
  }

  /**
   * Loads a sentencepiece model (path or bytes) and wraps it with `config` (default: JSD's, with
   * the pad/eos/unk ids taken from the model where it defines them).
   */
  static async load(source: string | Uint8Array, config?: Partial<TokenizerConfig>): Promise<JsdTokenizer> {
    const sp = await SentencePieceModel.load(source);
    const ids = sp.specialIds;
    const base: TokenizerConfig = {
      ...JSD_TOKENIZER_CONFIG,
      ...(ids.pad >= 0 ? { padId: ids.pad } : {}),
      ...(ids.eos >= 0 ? { eosId: ids.eos } : {}),
      ...(ids.unk >= 0 ? { unkId: ids.unk } : {}),
    };
    return new JsdTokenizer(sp, { ...base, ...config });
  }

  /**
   * The text's full, untruncated ids and pieces, exactly `convert_tokens_to_ids(tokenize(text))`:
   * no `</s>` appended, no padding. For splitting long prompts into several 77-id windows.
   */
  encodeRaw(text: string): RawTokens {
    if (typeof text !== "string") throw new JsdTypeError(`text must be a string, got ${text === null ? "null" : typeof text}`);
    const bad = loneSurrogateIndex(text);
    if (bad >= 0) {
      throw new JsdError(
        "JSD_INVALID_ARGUMENT",
        `prompt has a lone UTF-16 surrogate (U+${text.charCodeAt(bad).toString(16).toUpperCase()}) at index ${bad}: it is not valid Unicode text`,
      );
    }
    const lowered = this.config.doLowerCase ? this.#lowerOutsideSpecial(text) : text;
    const chunks = this.#splitOnSpecial(lowered);
    const ids: number[] = [];
    const pieces: string[] = [];
    for (const chunk of chunks) {
      if (chunk.text.length === 0) continue; // stripped away entirely
      const special = chunk.special ? this.#special.get(chunk.text) : undefined;
      if (special !== undefined) {
        ids.push(special);
        pieces.push(chunk.text);
        continue;
      }
      const enc = this.sentencePiece.encode(chunk.text);
      for (let i = 0; i < enc.pieces.length; i++) {
        const piece = enc.pieces[i];
        // T5Tokenizer maps pieces to ids with piece_to_id(piece); for anything but an unknown
        // run's surface text that is the id sentencepiece returned.
        let id = enc.ids[i];
        if (id === this.#spUnk) id = this.sentencePiece.pieceToId(piece);
        if (id === this.#spUnk) id = this.config.unkId;
        ids.push(id);
        pieces.push(piece);
      }
    }
    return { ids, pieces };
  }

  /**
   * `tokenizer(text, padding="max_length", max_length, truncation=True)` plus the bookkeeping
   * the reference records (length before padding, untruncated length, truncated flag).
   */
  tokenize(text: string): TokenizedPrompt {
    const raw = this.encodeRaw(text);
    const { ids, length, droppedTokens } = this.toInputIds(raw.ids);
    const untruncatedLength = this.#endsWithEos(raw.ids) ? raw.ids.length : raw.ids.length + 1;
    return {
      ids,
      pieces: raw.pieces,
      length,
      untruncatedLength,
      droppedTokens,
      truncated: untruncatedLength > this.config.maxLength,
    };
  }

  /**
   * transformers' `prepare_for_model` on ids without `</s>`: when ids plus one `</s>` exceed
   * maxLength, keep the first maxLength - 1; append `</s>` unless they already end with it;
   * right-pad with padId. `droppedTokens` counts the ids cut off.
   */
  toInputIds(rawIds: readonly number[]): { ids: Int32Array; length: number; droppedTokens: number } {
    if (!Array.isArray(rawIds)) throw new JsdTypeError("rawIds must be an array of ids");
    for (const id of rawIds) {
      if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff) throw new JsdRangeError(`token ids must be integers from 0 to 2^31 - 1, got ${id}`);
    }
    const { maxLength, eosId, padId } = this.config;
    let kept = rawIds;
    if (rawIds.length + 1 > maxLength) kept = rawIds.slice(0, maxLength - 1);
    const withEos = this.#endsWithEos(kept) ? [...kept] : [...kept, eosId];
    const ids = new Int32Array(maxLength).fill(padId);
    ids.set(withEos);
    return { ids, length: withEos.length, droppedTokens: rawIds.length - kept.length };
  }

  /**
   * transformers' `re.sub(r"(special|...)|(.+?)", lambda m: m[1] or m[2].lower())`: special tokens
   * as written are kept, every other code point is lower-cased on its own.
   */
  #lowerOutsideSpecial(text: string): string {
    return this.#segments(text)
      .map((seg) => (seg.special ? seg.text : pythonLowerPerCodePoint(seg.text)))
      .join("");
  }

  /** The text cut at each special token (leftmost match, first listed at a position), empty pieces dropped. */
  #segments(text: string): { text: string; special: boolean }[] {
    const segments: { text: string; special: boolean }[] = [];
    const push = (t: string, special: boolean) => {
      if (t.length > 0) segments.push({ text: t, special });
    };
    let start = 0;
    let pos = 0;
    while (pos < text.length) {
      const matched = this.#specialList.find((s) => text.startsWith(s, pos));
      if (matched === undefined) {
        pos++;
        continue;
      }
      push(text.slice(start, pos), false);
      push(matched, true);
      pos += matched.length;
      start = pos;
    }
    push(text.slice(start), false);
    return segments;
  }

  #endsWithEos(ids: readonly number[]): boolean {
    return ids.length > 0 && ids[ids.length - 1] === this.config.eosId;
  }

  /**
   * transformers' `tokens_trie.split` followed by the strip loop of `tokenize()`: splits on the
   * special tokens (leftmost match, longest at a position), strips Python whitespace from the
   * chunks on both sides of each special token, in the same order transformers does.
   */
  #splitOnSpecial(text: string): { text: string; special: boolean }[] {
    const tokens = this.#segments(text);
    for (let i = 0; i < tokens.length; i++) {
      if (!tokens[i].special) continue;
      if (i + 1 < tokens.length && !tokens[i + 1].special) tokens[i + 1].text = pythonLstrip(tokens[i + 1].text);
      if (i > 0 && !tokens[i - 1].special) tokens[i - 1].text = pythonRstrip(tokens[i - 1].text);
    }
    return tokens;
  }
}
