// The text arguments of protocol-0 opcodes (PUT/GET indices, STRING's quoted repr, UNICODE's
// raw-unicode-escape), decoded without Python: each malformed one is refused through `bad`.
import type { JsdError } from "../errors.js";

export function memoIndex(text: string, bad: (why: string) => JsdError): number {
  if (!/^\d{1,10}$/.test(text)) throw bad(`'${text}' is not a memo index`);
  return Number(text);
}

/** Decodes protocol-0 STRING arguments: a quoted Python 2 repr with backslash escapes. */
export function decodeQuoted(text: string, bad: (why: string) => JsdError): string {
  const q = text[0];
  if (text.length < 2 || (q !== "'" && q !== '"') || text[text.length - 1] !== q) throw bad("STRING argument is not quoted");
  const body = text.slice(1, -1);
  const simple: Record<string, string> = { "\\": "\\", "'": "'", '"': '"', n: "\n", r: "\r", t: "\t", a: "\x07", b: "\b", f: "\f", v: "\v", "0": "\0" };
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (ch !== "\\") {
      out += ch;
      continue;
    }
    const next = body[++i];
    if (next === "x" && /^[0-9a-fA-F]{2}$/.test(body.slice(i + 1, i + 3))) {
      out += String.fromCharCode(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (next !== undefined && next in simple) {
      out += simple[next];
    } else {
      throw bad(`unsupported escape in STRING argument`);
    }
  }
  return out;
}

/** Decodes protocol-0 UNICODE arguments (raw-unicode-escape: \uXXXX and \UXXXXXXXX only). */
export function decodeRawUnicodeEscape(text: string, bad: (why: string) => JsdError): string {
  return text.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, four: string | undefined, eight: string | undefined) => {
    const code = parseInt((four ?? eight) as string, 16);
    if (code > 0x10ffff) throw bad("UNICODE escape out of range");
    return String.fromCodePoint(code);
  });
}
