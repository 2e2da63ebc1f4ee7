// The extended prompt syntax (issue #10): emphasis, weights, BREAK, escapes, in half- and
// full-width forms, and malformed input, which must never throw (unmatched brackets are text).
import { describe, expect, it } from "vitest";
import { parsePrompt, promptPlainText, splitAtBreaks, type PromptPart } from "../../lib/prompt/parse.js";

type Simple = [string, number] | "BREAK";

/** Parts as [text, weight rounded to 1e-9] or "BREAK". */
function simple(parts: PromptPart[]): Simple[] {
  return parts.map((p) => (p.type === "break" ? "BREAK" : [p.text, Math.round(p.weight * 1e9) / 1e9]));
}

const up = 1.1;
const down = 1 / 1.1;
const r = (w: number) => Math.round(w * 1e9) / 1e9;

// [prompt, expected parts]
const CASES: Array<[string, Simple[]]> = [
  // plain text, empty
  ["", []],
  ["白い背景に赤い丸", [["白い背景に赤い丸", 1]]],
  ["赤い丸、白い背景。", [["赤い丸、白い背景。", 1]]],
  // emphasis, half- and full-width
  ["(赤い丸)", [["赤い丸", up]]],
  ["（赤い丸）", [["赤い丸", up]]],
  ["（赤い丸)", [["赤い丸", up]]],
  ["[赤い丸]", [["赤い丸", r(down)]]],
  ["［赤い丸］", [["赤い丸", r(down)]]],
  ["[赤い丸］", [["赤い丸", r(down)]]],
  ["白い背景に(赤い丸)", [["白い背景に", 1], ["赤い丸", up]]],
  // explicit weights
  ["(赤い丸:1.3)", [["赤い丸", 1.3]]],
  ["（桜：1.3）、富士山、夕焼け", [["桜", 1.3], ["、富士山、夕焼け", 1]]],
  ["（桜：１．３）", [["桜", 1.3]]],
  ["(桜：1.3)", [["桜", 1.3]]],
  ["（桜:１.５)", [["桜", 1.5]]],
  ["(桜: 0.5 ) 富士山", [["桜", 0.5], [" 富士山", 1]]],
  ["(a：　１．５　）", [["a", 1.5]]],
  ["(桜:.5)", [["桜", 0.5]]],
  ["(桜:2.)", [["桜", 2]]],
  ["(桜:＋０．８)", [["桜", 0.8]]],
  ["(桜:-1)", [["桜", -1]]],
  // nesting
  ["((桜))", [["桜", r(up * up)]]],
  ["（（（桜）））", [["桜", r(up ** 3)]]],
  ["[[桜]]", [["桜", r(down * down)]]],
  ["([桜])", [["桜", 1]]],
  ["［(桜)］", [["桜", 1]]],
  ["((桜:1.5))", [["桜", r(1.5 * up)]]],
  ["（[桜]：2）", [["桜", r(2 * down)]]],
  ["((a) b)", [["a", r(up * up)], [" b", up]]],
  ["a (b [c] d) e", [["a ", 1], ["b ", up], ["c", 1], [" d", up], [" e", 1]]],
  ["(a [b) c]", [["a ", up], ["b", 1], [" c", r(down)]]],
  ["(赤い丸)(青い背景)", [["赤い丸青い背景", up]]],
  // escapes
  ["\\(桜\\)", [["(桜)", 1]]],
  ["＼（桜＼）", [["（桜）", 1]]],
  ["\\[a\\] \\\\ b", [["[a] \\ b", 1]]],
  ["(a\\:1.5)", [["a:1.5", up]]],
  ["(\\(桜\\))", [["(桜)", up]]],
  ["a\\b", [["a\\b", 1]]],
  ["\\", [["\\", 1]]],
  ["\\BREAK", [["BREAK", 1]]],
  // BREAK
  ["赤い丸 BREAK 青い背景", [["赤い丸", 1], "BREAK", ["青い背景", 1]]],
  ["赤い丸ＢＲＥＡＫ青い背景", [["赤い丸", 1], "BREAK", ["青い背景", 1]]],
  ["赤い丸　ＢＲＥＡＫ　青い背景", [["赤い丸", 1], "BREAK", ["青い背景", 1]]],
  ["赤い丸BREAK青い背景", [["赤い丸", 1], "BREAK", ["青い背景", 1]]],
  ["(赤い丸 BREAK 青い背景:1.2)", [["赤い丸", 1.2], "BREAK", ["青い背景", 1.2]]],
  ["BREAK BREAK a", ["BREAK", "BREAK", ["a", 1]]],
  ["BREAKFAST break BREAK", [["BREAKFAST break", 1], "BREAK"]],
  ["xBREAK", [["xBREAK", 1]]],
  ["Break", [["Break", 1]]],
  // malformed: unmatched brackets stay as text
  ["(桜", [["(桜", 1]]],
  ["桜)", [["桜)", 1]]],
  ["（桜", [["（桜", 1]]],
  ["桜］", [["桜］", 1]]],
  ["((桜)", [["(", 1], ["桜", up]]],
  ["(桜))", [["桜", up], [")", 1]]],
  [")(", [[")(", 1]]],
  ["(", [["(", 1]]],
  ["[a:1.3]", [["a:1.3", r(down)]]],
  [":1.2)", [[":1.2)", 1]]],
  ["(a:1.2.3)", [["a:1.2.3", up]]],
  ["(a:)", [["a:", up]]],
  ["(a:1.2", [["(a:1.2", 1]]],
  ["背景：白", [["背景：白", 1]]],
  ["()", []],
  ["（）桜", [["桜", 1]]],
  ["(:1.5)", []],
  ["(a:1" + "0".repeat(400) + ")", [["a:1" + "0".repeat(400), up]]],
  ["(🐱)と🐶", [["🐱", up], ["と🐶", 1]]],
];

describe("parsePrompt", () => {
  it(`parses ${CASES.length} prompts as expected`, () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
    for (const [prompt, expected] of CASES) {
      expect(simple(parsePrompt(prompt)), JSON.stringify(prompt)).toEqual(expected);
    }
  });

  it("the documented example: （桜：1.3）、富士山、夕焼け", () => {
    expect(parsePrompt("（桜：1.3）、富士山、夕焼け")).toEqual([
      { type: "text", text: "桜", weight: 1.3 },
      { type: "text", text: "、富士山、夕焼け", weight: 1 },
    ]);
  });

  it("keeps text without syntax exactly as typed", () => {
    for (const text of ["白い背景に赤い丸", "  spaces  kept  ", "a:b：c", "1.5", "\n改行\n", "\u3000全角スペース"]) {
      expect(parsePrompt(text)).toEqual([{ type: "text", text, weight: 1 }]);
      expect(promptPlainText(parsePrompt(text))).toBe(text);
    }
  });

  it("plain text and segments", () => {
    const parts = parsePrompt("(赤い丸:1.2)、白い背景 BREAK [青い]星");
    expect(promptPlainText(parts)).toBe("赤い丸、白い背景 青い星");
    expect(splitAtBreaks(parts)).toEqual([
      [
        { text: "赤い丸", weight: 1.2 },
        { text: "、白い背景", weight: 1 },
      ],
      [
        { text: "青い", weight: down },
        { text: "星", weight: 1 },
      ],
    ]);
    expect(splitAtBreaks([])).toEqual([[]]);
  });

  it("never throws on random prompts made of syntax characters; its output is well formed", () => {
    const alphabet = ["(", ")", "[", "]", "（", "）", "［", "］", ":", "：", "\\", "＼", "1", "１", ".", "．", "-", " ", "　", "BREAK", "ＢＲＥＡＫ", "赤", "い", "丸", "、", "a", "🐱"];
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let n = 0; n < 3000; n++) {
      const len = Math.floor(rand() * 24);
      let text = "";
      for (let i = 0; i < len; i++) text += alphabet[Math.floor(rand() * alphabet.length)];
      let parts: PromptPart[] = [];
      expect(() => (parts = parsePrompt(text)), JSON.stringify(text)).not.toThrow();
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i];
        if (p.type === "break") continue;
        expect(p.text.length).toBeGreaterThan(0);
        expect(Number.isFinite(p.weight)).toBe(true);
        const prev = parts[i - 1];
        if (prev?.type === "text") expect(prev.weight).not.toBe(p.weight); // equal weights are merged
      }
      // Nothing typed is lost but syntax: every non-syntax character survives, in order.
      const kept = promptPlainText(parts, "");
      const letters = (s: string) => s.replace(/[()[\]（）［］:：\\＼0-9０-９.．\-\s　]|BREAK|ＢＲＥＡＫ/g, "");
      expect(letters(kept)).toBe(letters(text));
    }
  });

  it("rejects a non-string with a TypeError", () => {
    expect(() => parsePrompt(undefined as unknown as string)).toThrow(TypeError);
  });
});
