// A printable token listing (for `jsd tokens`): one line per token with its position, piece, id
// and weight, and a rule line at each chunk boundary (extended mode) or at the truncation point
// (reference mode).
import type { PromptChunk, PromptTokens } from "./tokens.js";

export interface TokenListingOptions {
  /** Show the ids (default true). */
  ids?: boolean;
}

/** Columns a string takes in a terminal: East Asian wide and full-width characters count 2. */
export function displayWidth(text: string): number {
  let width = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || (c >= 0x7f && c < 0xa0) || (c >= 0x300 && c < 0x370) || c === 0x200b || (c >= 0xfe00 && c <= 0xfe0f)) continue;
    const wide =
      (c >= 0x1100 && c <= 0x115f) ||
      (c >= 0x2e80 && c <= 0x303e) ||
      (c >= 0x3041 && c <= 0x33ff) ||
      (c >= 0x3400 && c <= 0x4dbf) ||
      (c >= 0x4e00 && c <= 0x9fff) ||
      (c >= 0xa000 && c <= 0xa4cf) ||
      (c >= 0xac00 && c <= 0xd7a3) ||
      (c >= 0xf900 && c <= 0xfaff) ||
      (c >= 0xfe30 && c <= 0xfe4f) ||
      (c >= 0xff00 && c <= 0xff60) ||
      (c >= 0xffe0 && c <= 0xffe6) ||
      (c >= 0x1f300 && c <= 0x1faff) ||
      (c >= 0x20000 && c <= 0x3fffd);
    width += wide ? 2 : 1;
  }
  return width;
}

function padEnd(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - displayWidth(text)));
}

/** A piece as printed: control characters escaped, the rest as is ("▁" marks a word start). */
function showPiece(piece: string): string {
  return piece.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function showWeight(weight: number): string {
  return weight === 1 ? "" : `×${Number(weight.toFixed(3))}`;
}

const END_LABELS: Record<PromptChunk["end"], string> = {
  full: "full",
  comma: "ends after a comma",
  break: "ends at BREAK",
  end: "last",
  padding: "empty (padding)",
};

function row(
  position: number,
  piece: string,
  id: number | undefined,
  weight: number,
  pieceWidth: number,
  options: TokenListingOptions,
  note = "",
): string {
  const cells = [String(position).padStart(5), padEnd(showPiece(piece), pieceWidth)];
  if (options.ids !== false) cells.push((id === undefined ? "-" : String(id)).padStart(6));
  const w = showWeight(weight);
  cells.push(padEnd(w, 8));
  if (note) cells.push(note);
  return cells.join("  ").trimEnd();
}

/**
 * Formats tokens from `model.tokenize(text, { mode })` as text lines. Extended mode: a header
 * with the count against the limit, then each chunk under a rule line
 * `── chunk 2/3 · tokens 76–140 (65) · ends after a comma ──`, tokens shown with their weights
 * (`×1.1`) and the dummy prefix a chunk that opens mid-text gets marked.
 * Reference mode: the tokens, and a rule line where rinna's tokenizer truncates.
 */
export function formatTokenListing(tokens: PromptTokens, options: TokenListingOptions = {}): string {
  const lines: string[] = [];
  if (tokens.mode === "extended") {
    const n = tokens.chunks.length;
    const pieceWidth = Math.max(8, ...tokens.pieces.map((p) => displayWidth(showPiece(p))));
    lines.push(`extended mode: ${tokens.count} tokens / ${tokens.limit} (${n} chunk${n === 1 ? "" : "s"} of ${tokens.chunkLength})`);
    tokens.chunks.forEach((chunk, i) => {
      const count = chunk.tokens.length;
      const range = count === 0 ? "no tokens" : `tokens ${chunk.start + 1}–${chunk.start + count} (${count})`;
      lines.push(`── chunk ${i + 1}/${n} · ${range} · ${END_LABELS[chunk.end]} ──`);
      chunk.tokens.forEach((t, k) =>
        lines.push(row(chunk.start + k + 1, t.piece, t.id, t.weight, pieceWidth, options, t.dummyPrefix ? "(chunk start: dummy prefix ▁)" : "")),
      );
    });
    return lines.join("\n");
  }
  const kept = tokens.count - tokens.droppedTokens;
  const pieceWidth = Math.max(8, ...tokens.pieces.map((p) => displayWidth(showPiece(p))));
  lines.push(
    `reference mode: ${tokens.count} tokens / ${tokens.limit}` + (tokens.droppedTokens > 0 ? ` · ${tokens.droppedTokens} dropped (truncated at ${tokens.limit})` : ""),
  );
  tokens.pieces.forEach((piece, i) => {
    if (i === kept) lines.push(`── truncated: the ${tokens.droppedTokens} token${tokens.droppedTokens === 1 ? "" : "s"} below are dropped ──`);
    lines.push(row(i + 1, piece, i < kept ? tokens.ids[i] : undefined, 1, pieceWidth, options));
  });
  return lines.join("\n");
}
