// The prompt syntax of "extended" prompt mode: emphasis, explicit weights and BREAK, with the
// full-width forms a Japanese IME types. The parser is pure string work and never throws: any
// text is a valid prompt, and syntax that does not close is literal text.
//
// Syntax (half-width and full-width forms are interchangeable, also within one pair):
//
//   (text)  （text）       weight × 1.1
//   [text]  ［text］       weight ÷ 1.1
//   (text:1.3)  （text：１．３）  weight × 1.3. The number: an optional sign (+ - ＋ －), digits
//                          (0-9, ０-９) with an optional decimal point (. ．), e.g. 1, 1.25, .5,
//                          ０．８; blanks are allowed around it. Only a round pair takes a number;
//                          `[text:1.3]` is literal ":1.3" ÷ 1.1.
//   nesting                weights multiply: ((a)) = 1.21, ([a]) = 1, ((a:1.5)) = 1.65.
//   \( \) \[ \] \\ \: and the full-width （ ） ［ ］ ＼ ：  literal character (the escape
//                          character is \ or ＼); \BREAK is the literal word. A backslash before
//                          anything else is itself literal.
//   BREAK  ＢＲＥＡＫ       (upper case, not inside a longer Latin word such as "BREAKFAST";
//                          Japanese text may touch it: 「赤い丸BREAK青い背景」) ends the current
//                          75-token chunk; the blanks around it are dropped.
//
// Unmatched brackets are literal text: a closing bracket with no open one of its kind before it,
// and an opening bracket that is never closed, stay in the text as typed (A1111 instead applies
// an unclosed "(" up to the end of the prompt; we keep the user's text). Round and square pairs
// are matched independently, each closing bracket with the latest open one of its kind, as
// A1111's parse_prompt_attention does, so "(a [b) c]" gives a ×1.1, b ×1, c ÷1.1.
import { JsdTypeError } from "../errors.js";

/** One piece of a parsed prompt: text with its weight, or a BREAK. */
export type PromptPart = { type: "text"; text: string; weight: number } | { type: "break" };

/** The factor of `(text)`. */
export const ROUND_MULTIPLIER = 1.1;
/** The factor of `[text]`. */
export const SQUARE_MULTIPLIER = 1 / 1.1;

type Kind = "round" | "square";

type Lexeme =
  | { t: "text"; text: string }
  | { t: "open"; kind: Kind; raw: string }
  | { t: "close"; kind: Kind; raw: string }
  | { t: "weight"; weight: number; raw: string }
  | { t: "break" };

const ROUND_OPEN = new Set(["(", "（"]);
const ROUND_CLOSE = new Set([")", "）"]);
const SQUARE_OPEN = new Set(["[", "［"]);
const SQUARE_CLOSE = new Set(["]", "］"]);
const ESCAPE = new Set(["\\", "＼"]);
const ESCAPABLE = new Set(["(", ")", "[", "]", "（", "）", "［", "］", "\\", "＼", ":", "："]);
const BREAK_WORDS = ["BREAK", "ＢＲＥＡＫ"];

// ":" blanks number blanks ")" at a position (sticky). Blanks: JS \s, which includes U+3000.
const WEIGHT = /[:：]\s*([+\-＋－]?(?:[0-9０-９]+(?:[.．][0-9０-９]*)?|[.．][0-9０-９]+))\s*[)）]/y;

/** Latin letters, digits and "_", half- and full-width: what may not touch a BREAK. */
function isWordChar(ch: string | undefined): boolean {
  if (ch === undefined) return false;
  return /[A-Za-z0-9_Ａ-Ｚａ-ｚ０-９＿]/.test(ch);
}

function toAsciiNumber(text: string): number {
  let ascii = "";
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    // U+FF0B ＋, U+FF0D －, U+FF0E ．, U+FF10..FF19 ０-９ are their ASCII forms + 0xFEE0.
    ascii += c >= 0xff01 && c <= 0xff5e ? String.fromCharCode(c - 0xfee0) : ch;
  }
  return Number(ascii);
}

function lex(text: string): Lexeme[] {
  const out: Lexeme[] = [];
  let run = "";
  const flush = () => {
    if (run.length > 0) out.push({ t: "text", text: run });
    run = "";
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (ESCAPE.has(c)) {
      const next = text[i + 1];
      if (next !== undefined && ESCAPABLE.has(next)) {
        run += next;
        i += 2;
        continue;
      }
      const word = BREAK_WORDS.find((w) => text.startsWith(w, i + 1));
      if (word !== undefined) {
        run += word;
        i += 1 + word.length;
        continue;
      }
      run += c;
      i++;
      continue;
    }
    if (ROUND_OPEN.has(c) || SQUARE_OPEN.has(c)) {
      flush();
      out.push({ t: "open", kind: ROUND_OPEN.has(c) ? "round" : "square", raw: c });
      i++;
      continue;
    }
    if (ROUND_CLOSE.has(c) || SQUARE_CLOSE.has(c)) {
      flush();
      out.push({ t: "close", kind: ROUND_CLOSE.has(c) ? "round" : "square", raw: c });
      i++;
      continue;
    }
    if (c === ":" || c === "：") {
      WEIGHT.lastIndex = i;
      const m = WEIGHT.exec(text);
      const weight = m ? toAsciiNumber(m[1]) : NaN;
      if (m && Number.isFinite(weight)) {
        flush();
        out.push({ t: "weight", weight, raw: m[0] });
        i += m[0].length;
        continue;
      }
      run += c;
      i++;
      continue;
    }
    const word = BREAK_WORDS.find((w) => text.startsWith(w, i));
    if (word !== undefined && !isWordChar(text[i - 1]) && !isWordChar(text[i + word.length])) {
      flush();
      out.push({ t: "break" });
      i += word.length;
      continue;
    }
    run += c;
    i++;
  }
  flush();
  return out;
}

const BLANK_START = /^\s+/;
const BLANK_END = /\s+$/;

/**
 * Parses a prompt into weighted text and BREAKs. Adjacent text of equal weight is merged, empty
 * text is left out, the blanks around a BREAK are dropped. Never throws for a string.
 *
 *   parsePrompt("（桜：1.3）、富士山")  → [{ text: "桜", weight: 1.3 }, { text: "、富士山", weight: 1 }]
 */
export function parsePrompt(text: string): PromptPart[] {
  if (typeof text !== "string") throw new JsdTypeError(`prompt must be a string, got ${text === null ? "null" : typeof text}`);
  const lexemes = lex(text);

  // Match brackets: each kind on its own stack. factor[i] is set for matched openers,
  // closer[i] = index of the matching opener for matched closers.
  const factor = new Map<number, number>();
  const closes = new Map<number, number>();
  const stacks: Record<Kind, number[]> = { round: [], square: [] };
  lexemes.forEach((lx, i) => {
    if (lx.t === "close" || lx.t === "weight") {
      const kind: Kind = lx.t === "close" ? lx.kind : "round";
      const open = stacks[kind].pop();
      if (open === undefined) return; // unmatched: literal
      factor.set(open, lx.t === "weight" ? lx.weight : kind === "round" ? ROUND_MULTIPLIER : SQUARE_MULTIPLIER);
      closes.set(i, open);
    } else if (lx.t === "open") stacks[lx.kind].push(i);
  });

  // Walk again with the set of open pairs; the weight of text is the product of their factors,
  // innermost first (the order in which A1111 multiplies them).
  const parts: PromptPart[] = [];
  const active: number[] = [];
  const weight = () => {
    let w = 1;
    for (let k = active.length - 1; k >= 0; k--) w *= factor.get(active[k])!;
    return w;
  };
  const pushText = (t: string) => {
    if (t.length > 0) parts.push({ type: "text", text: t, weight: weight() });
  };
  lexemes.forEach((lx, i) => {
    switch (lx.t) {
      case "text":
        pushText(lx.text);
        break;
      case "break":
        parts.push({ type: "break" });
        break;
      case "open":
        if (factor.has(i)) active.push(i);
        else pushText(lx.raw);
        break;
      case "close":
      case "weight": {
        const open = closes.get(i);
        if (open === undefined) pushText(lx.raw);
        else active.splice(active.lastIndexOf(open), 1);
        break;
      }
    }
  });

  // Blanks around each BREAK go (over parts that become empty on the way).
  parts.forEach((p, i) => {
    if (p.type !== "break") return;
    for (let k = i - 1; k >= 0; k--) {
      const q = parts[k];
      if (q.type !== "text") break;
      q.text = q.text.replace(BLANK_END, "");
      if (q.text.length > 0) break;
    }
    for (let k = i + 1; k < parts.length; k++) {
      const q = parts[k];
      if (q.type !== "text") break;
      q.text = q.text.replace(BLANK_START, "");
      if (q.text.length > 0) break;
    }
  });

  const merged: PromptPart[] = [];
  for (const p of parts) {
    if (p.type === "text" && p.text.length === 0) continue;
    const last = merged[merged.length - 1];
    if (p.type === "text" && last?.type === "text" && last.weight === p.weight) last.text += p.text;
    else merged.push(p.type === "text" ? { ...p } : p);
  }
  return merged;
}

/**
 * The prompt's text with the syntax taken out (weights dropped, escapes resolved); BREAKs
 * become `separator` (default a space).
 */
export function promptPlainText(parts: readonly PromptPart[], separator = " "): string {
  return parts.map((p) => (p.type === "text" ? p.text : separator)).join("");
}

/** Splits parsed parts at the BREAKs: one list of weighted texts per segment (BREAK BREAK gives an empty segment). */
export function splitAtBreaks(parts: readonly PromptPart[]): { text: string; weight: number }[][] {
  const segments: { text: string; weight: number }[][] = [[]];
  for (const p of parts) {
    if (p.type === "break") segments.push([]);
    else segments[segments.length - 1].push({ text: p.text, weight: p.weight });
  }
  return segments;
}
