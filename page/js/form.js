// The options form: filled from the server's facts (sizes, samplers, prompt modes, limits),
// kept consistent as it changes (Karras only where the sampler has it, the size limit, the seed
// field), read as POST /v1/jobs's body, and filled again from an image's settings (Reuse).
import { els } from "./dom.js";
import { info, setInfo, showServerInfo } from "./info.js";
import { refreshTokens } from "./tokens.js";

const MODE_LABELS = {
  reference: "標準 Reference",
  extended: "拡張 Extended",
};
const MODE_TITLES = {
  reference: "77トークンまで (超過分は無視) — up to 77 tokens, the rest is dropped (as the original pipeline)",
  extended: "長いプロンプトを75トークンずつ分けて使います — long prompts, in chunks of 75 tokens",
};

/** The seed of the newest image, offered when the seed field opens. */
let lastSeed = null;

export function rememberSeed(seed) {
  lastSeed = seed;
}

// ---- filled from the server's facts -------------------------------------------------------------

function fillSelect(select, values, label, selected) {
  select.replaceChildren();
  for (const value of values) {
    const option = document.createElement("option");
    option.value = String(value);
    option.textContent = label(value);
    select.append(option);
  }
  select.value = String(selected);
}

function sizeChoices(limits, defaultSize) {
  const sides = [];
  for (let side = 64; side <= limits.maxSide; side += 64) sides.push(side);
  if (!sides.includes(defaultSize)) sides.push(defaultSize);
  return sides.sort((a, b) => a - b);
}

/** Takes the server's facts (GET /v1/info), fills the form from them and opens it. */
export function applyInfo(next) {
  setInfo(next);
  const { limits } = info;
  const sides = sizeChoices(limits, info.defaultSize);
  for (const select of [els.width, els.height]) fillSelect(select, sides, (s) => `${s} px`, info.defaultSize);

  const plainLabel = (name) => info.samplers.find((s) => s.scheduler === name && !s.karras)?.name ?? name;
  fillSelect(els.scheduler, info.schedulers, plainLabel, info.schedulers.includes("pndm") ? "pndm" : info.schedulers[0]);
  fillSelect(els.promptMode, info.promptModes, (m) => MODE_LABELS[m] ?? m, info.promptModes[0]);
  for (const option of els.promptMode.options) option.title = MODE_TITLES[option.value] ?? "";

  els.steps.max = String(limits.maxSteps);
  els.steps.value = String(Math.min(20, limits.maxSteps));
  els.numImages.max = String(limits.maxImages);
  els.prompt.maxLength = limits.maxPromptLength;
  els.negativePrompt.maxLength = limits.maxPromptLength;
  updateKarras();
  checkSize();
  showServerInfo();
  els.generate.disabled = false;
  document.body.dataset.ready = "true";
}

// ---- kept consistent ----------------------------------------------------------------------------

function karrasAllowed(scheduler) {
  return Boolean(info?.samplers.some((s) => s.scheduler === scheduler && s.karras));
}

function updateKarras() {
  const allowed = karrasAllowed(els.scheduler.value);
  els.karras.disabled = !allowed;
  if (!allowed) els.karras.checked = false;
  els.karras.closest(".check").classList.toggle("disabled", !allowed);
}

function checkSize() {
  if (!info) return true;
  const pixels = Number(els.width.value) * Number(els.height.value);
  const ok = pixels <= info.limits.maxPixels;
  els.sizeWarning.hidden = ok;
  if (!ok) {
    const max = info.limits.maxPixels;
    els.sizeWarning.textContent = `幅×高さが上限 (${max.toLocaleString()} ピクセル) を超えています。 Width × height is over this server's limit of ${max.toLocaleString()} pixels.`;
  }
  return ok;
}

function updateSeedField() {
  const random = els.seedRandom.checked;
  els.seed.disabled = random;
  if (random) {
    els.seed.placeholder = "ランダム random";
  } else {
    els.seed.placeholder = "0";
    if (!els.seed.value) els.seed.value = String(lastSeed ?? Math.floor(Math.random() * 2 ** 32));
  }
}

/** The fields that depend on others, and the seed field's first state. */
export function wireForm() {
  els.scheduler.addEventListener("change", updateKarras);
  els.width.addEventListener("change", checkSize);
  els.height.addEventListener("change", checkSize);
  els.seedRandom.addEventListener("change", updateSeedField);
  updateSeedField();
}

// ---- read and refilled --------------------------------------------------------------------------

/** The form as POST /v1/jobs's body, or throws a message for the person. */
export function readForm() {
  const invalid = [...els.form.elements].find((e) => typeof e.checkValidity === "function" && !e.disabled && !e.checkValidity());
  if (invalid) {
    invalid.reportValidity?.();
    const name = invalid.labels?.[0]?.textContent?.trim() ?? invalid.name;
    throw new Error(`入力を確認してください: ${name} — ${invalid.validationMessage}`);
  }
  if (!checkSize()) throw new Error(els.sizeWarning.textContent);
  const body = {
    prompt: els.prompt.value,
    promptMode: els.promptMode.value,
    width: Number(els.width.value),
    height: Number(els.height.value),
    steps: Number(els.steps.value),
    guidanceScale: Number(els.guidance.value),
    scheduler: els.scheduler.value,
    numImages: Number(els.numImages.value),
  };
  if (els.negativePrompt.value.trim()) body.negativePrompt = els.negativePrompt.value;
  if (!els.karras.disabled && els.karras.checked) body.karras = true;
  if (!els.seedRandom.checked) {
    const text = els.seed.value.trim();
    if (!/^[0-9]{1,20}$/.test(text)) throw new Error("シードは 0 以上の整数にしてください。 The seed must be a whole number ≥ 0.");
    const seed = BigInt(text);
    if (seed >= 2n ** 64n) throw new Error("シードは 2^64 未満にしてください。 The seed must be below 2^64.");
    // Seeds past 2^53 go as decimal strings (JSON numbers would lose digits).
    body.seed = seed <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(seed) : text;
  }
  return body;
}

/** Puts an image's settings back into the form, with its own seed (one image). */
export function applySettings(settings, seed) {
  els.prompt.value = settings.prompt ?? "";
  els.negativePrompt.value = settings.negativePrompt ?? "";
  if (settings.promptMode) els.promptMode.value = settings.promptMode;
  setSelect(els.width, settings.width);
  setSelect(els.height, settings.height);
  els.steps.value = String(settings.steps);
  els.guidance.value = String(settings.guidanceScale);
  els.scheduler.value = settings.scheduler;
  updateKarras();
  els.karras.checked = Boolean(settings.karras) && !els.karras.disabled;
  els.seedRandom.checked = false;
  els.seed.value = String(seed);
  updateSeedField();
  els.numImages.value = "1";
  checkSize();
  refreshTokens();
}

function setSelect(select, value) {
  const text = String(value);
  if (![...select.options].some((o) => o.value === text)) {
    const option = document.createElement("option");
    option.value = text;
    option.textContent = `${text} px`;
    select.append(option);
  }
  select.value = text;
}
