// The token counters under the prompt and the negative prompt: POST /v1/tokenize a moment after
// typing stops (and when the prompt mode changes), showing the count, the limit and what the
// limit drops.
import { els } from "./dom.js";
import { api, describeError } from "./api.js";
import { info } from "./info.js";

const TOKENIZE_DELAY_MS = 300;

function tokenCounter(textarea, output) {
  let timer = 0;
  let asked = 0;
  const update = async () => {
    if (!info) return;
    const ticket = ++asked;
    try {
      const result = await api("/v1/tokenize", { method: "POST", body: { text: textarea.value, mode: els.promptMode.value } });
      if (ticket !== asked) return; // a newer request is on its way
      output.replaceChildren();
      output.classList.toggle("warn", result.dropped > 0);
      output.append(document.createTextNode(`${result.count} / ${result.limit} トークン`));
      if (result.dropped > 0) {
        const note = document.createElement("span");
        note.className = "dropped";
        note.textContent = ` · ${result.dropped} 個は無視されます (${result.dropped} dropped)`;
        output.append(note);
        output.title = "上限を超えた分は使われません。「拡張」方式なら長いプロンプトも使えます。 Tokens past the limit are ignored; the extended mode takes longer prompts.";
      } else {
        output.title = `${result.count} tokens of ${result.limit}`;
      }
    } catch (error) {
      if (ticket !== asked) return;
      output.textContent = "? トークン";
      output.title = describeError(error);
    }
  };
  textarea.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(update, TOKENIZE_DELAY_MS);
  });
  return update;
}

let tokenUpdates = [];

/** Counts both prompts again now (no delay). */
export function refreshTokens() {
  for (const update of tokenUpdates) void update();
}

/** The counters on both prompt boxes, and a recount when the prompt mode changes. */
export function wireTokens() {
  tokenUpdates = [tokenCounter(els.prompt, els.promptTokens), tokenCounter(els.negativePrompt, els.negativeTokens)];
  els.promptMode.addEventListener("change", refreshTokens);
}
