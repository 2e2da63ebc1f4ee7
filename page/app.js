// The page at / of `jsd serve`: a form for generate()'s options, a job followed live over
// Server-Sent Events (progress, previews, images), and a gallery of the results. Plain browser
// JavaScript, no build step. The server's Content-Security-Policy allows only this file as script
// and style.css as style sheet, so nothing here writes inline style attributes or <style> blocks
// (setting element.style from script is CSSOM and allowed).

const KEY_STORAGE = "jsd.apiKey";
const TOKENIZE_DELAY_MS = 300;
const MAX_GALLERY = 60;

const $ = (selector) => {
  const element = document.querySelector(selector);
  if (!element) throw new Error(`page: ${selector} is missing`);
  return element;
};

const els = {
  serverInfo: $("#server-info"),
  keyPanel: $("#key-panel"),
  keyForm: $("#key-form"),
  keyInput: $("#api-key"),
  keyRefused: $("#key-refused"),
  forgetKey: $("#forget-key"),
  message: $("#message"),
  messageText: $("#message-text"),
  messageClose: $("#message-close"),
  form: $("#generate-form"),
  prompt: $("#prompt"),
  promptTokens: $("#prompt-tokens"),
  negativePrompt: $("#negative-prompt"),
  negativeTokens: $("#negative-prompt-tokens"),
  promptMode: $("#prompt-mode"),
  width: $("#width"),
  height: $("#height"),
  steps: $("#steps"),
  guidance: $("#guidance"),
  scheduler: $("#scheduler"),
  karras: $("#karras"),
  seed: $("#seed"),
  seedRandom: $("#seed-random"),
  numImages: $("#num-images"),
  sizeWarning: $("#size-warning"),
  generate: $("#generate"),
  cancel: $("#cancel"),
  preview: $("#preview"),
  previewEmpty: $("#preview-empty"),
  status: $("#status"),
  progress: $("#progress"),
  progressText: $("#progress-text"),
  gallery: $("#gallery"),
  galleryEmpty: $("#gallery-empty"),
};

/** Bilingual text: Japanese first, English after it in a span of its own language. */
function bi(parent, ja, en) {
  parent.replaceChildren();
  parent.append(document.createTextNode(ja + " "));
  const span = document.createElement("span");
  span.lang = "en";
  span.textContent = en;
  parent.append(span);
}

// ---- messages ------------------------------------------------------------------------------

function showMessage(text, kind = "error") {
  els.messageText.textContent = text;
  els.message.dataset.kind = kind;
  els.message.hidden = false;
}

function clearMessage() {
  els.message.hidden = true;
  els.messageText.textContent = "";
}

els.messageClose.addEventListener("click", clearMessage);

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

function describeError(error) {
  if (error instanceof ApiError) {
    const lead = {
      JSD_QUEUE_FULL: "サーバーが混み合っています。",
      JSD_SHUTTING_DOWN: "サーバーは停止中です。",
      JSD_INVALID_ARGUMENT: "設定に問題があります。",
      JSD_PAYLOAD_TOO_LARGE: "送信データが大きすぎます。",
      JSD_NETWORK: "サーバーに接続できません。",
    }[error.code] ?? "エラーが発生しました。";
    return `${lead} ${error.message}`;
  }
  return `エラーが発生しました。 ${error?.message ?? String(error)}`;
}

// ---- API key ------------------------------------------------------------------------------

let apiKey = readStoredKey();
let keyWaiters = null;

function readStoredKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) ?? "";
  } catch {
    return "";
  }
}

function storeKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage may be off (private mode): the key then lasts as long as the page.
  }
  els.forgetKey.hidden = !key;
}

/** Shows the key form (once, however many calls wait) and resolves when a key was entered. */
function askForKey(refused) {
  if (!keyWaiters) {
    keyWaiters = [];
    els.keyRefused.hidden = !refused;
    els.keyPanel.hidden = false;
    if (!info) bi(els.serverInfo, "APIキーを待っています", "Waiting for the API key");
    els.keyInput.value = "";
    els.keyInput.focus();
  }
  return new Promise((resolve) => keyWaiters.push(resolve));
}

els.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = els.keyInput.value.trim();
  if (!key) {
    els.keyInput.focus();
    return;
  }
  apiKey = key;
  storeKey(key);
  els.keyPanel.hidden = true;
  els.keyInput.value = "";
  if (!info) bi(els.serverInfo, "サーバーに接続中…", "Connecting…");
  const waiters = keyWaiters ?? [];
  keyWaiters = null;
  for (const resolve of waiters) resolve();
});

els.forgetKey.addEventListener("click", () => {
  apiKey = "";
  storeKey("");
  showMessage("APIキーを消去しました。 The API key was forgotten.", "info");
});

/**
 * Calls the API with the key, if any. A 401 asks for the key and tries again with it; other
 * refusals throw ApiError with the server's code and message. `raw` returns the Response.
 */
async function api(path, { method = "GET", body, signal, raw = false } = {}) {
  for (;;) {
    const sentKey = apiKey;
    const headers = { accept: raw ? "*/*" : "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (sentKey) headers.authorization = `Bearer ${sentKey}`;
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: "no-store" });
    } catch (error) {
      if (error?.name === "AbortError") throw error;
      throw new ApiError("JSD_NETWORK", `Cannot reach the server (${error?.message ?? error}).`, 0);
    }
    if (response.status === 401) {
      await response.body?.cancel().catch(() => {});
      if (sentKey) storeKey("");
      // Another call may have got a new key meanwhile: then just try again with it.
      if (apiKey === sentKey) await askForKey(Boolean(sentKey));
      continue;
    }
    if (!response.ok) throw await errorOf(response);
    return raw ? response : response.json();
  }
}

async function errorOf(response) {
  let code = `HTTP_${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body?.error?.message) {
      code = body.error.code ?? code;
      message = body.error.message;
    }
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 429) {
    const retry = response.headers.get("retry-after");
    if (retry) message += ` (${retry} 秒後に再試行してください / retry in ${retry} s)`;
  }
  return new ApiError(code, message, response.status);
}

// ---- server facts ------------------------------------------------------------------------

let info = null;
let running = null;

const MODE_LABELS = {
  reference: "標準 Reference",
  extended: "拡張 Extended",
};
const MODE_TITLES = {
  reference: "77トークンまで (超過分は無視) — up to 77 tokens, the rest is dropped (as the original pipeline)",
  extended: "長いプロンプトを75トークンずつ分けて使います — long prompts, in chunks of 75 tokens",
};

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

function applyInfo(next) {
  info = next;
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

function showServerInfo() {
  if (!info) return;
  const parts = [`モデル ${info.model ?? "?"}`, info.backend, `v${info.version}`];
  els.serverInfo.textContent = parts.join(" · ");
  els.serverInfo.title = `Model ${info.model ?? "?"}, backend ${info.backend}, version ${info.version}`;
}

async function loadInfo() {
  try {
    applyInfo(await api("/v1/info"));
    refreshTokens();
  } catch (error) {
    bi(els.serverInfo, "接続できません", "Not connected");
    showMessage(describeError(error));
  }
}

// ---- form -----------------------------------------------------------------------------------

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

let lastSeed = null;

els.scheduler.addEventListener("change", updateKarras);
els.width.addEventListener("change", checkSize);
els.height.addEventListener("change", checkSize);
els.seedRandom.addEventListener("change", updateSeedField);

/** The form as POST /v1/jobs's body, or throws a message for the person. */
function readForm() {
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
function applySettings(settings, seed) {
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

// ---- token counters -----------------------------------------------------------------------

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

const tokenUpdates = [tokenCounter(els.prompt, els.promptTokens), tokenCounter(els.negativePrompt, els.negativeTokens)];
function refreshTokens() {
  for (const update of tokenUpdates) void update();
}
els.promptMode.addEventListener("change", refreshTokens);

// ---- Server-Sent Events -----------------------------------------------------------------------

/**
 * Reads a text/event-stream response (fetch, so that it can carry the Authorization header,
 * which EventSource cannot) and yields { event, data, id } per message. Lines may end in LF, CR
 * or CRLF; messages and lines may be split anywhere across chunks.
 */
async function* readEventStream(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let data = [];
  let event = "";
  let id = "";
  const messages = [];

  const line = (text) => {
    if (text === "") {
      if (data.length > 0) messages.push({ event: event || "message", data: data.join("\n"), id });
      data = [];
      event = "";
      return;
    }
    if (text.startsWith(":")) return; // comment (keep-alive)
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
    else if (field === "id") id = value;
  };

  const feed = (final) => {
    const breaks = /\r\n|\r|\n/g;
    let start = 0;
    let match;
    while ((match = breaks.exec(buffer)) !== null) {
      // A CR at the very end may be the first half of a CRLF still on its way.
      if (match[0] === "\r" && match.index === buffer.length - 1 && !final) break;
      line(buffer.slice(start, match.index));
      start = breaks.lastIndex;
    }
    buffer = buffer.slice(start);
  };

  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      feed(false);
      while (messages.length > 0) yield messages.shift();
    }
    buffer += decoder.decode();
    feed(true);
    while (messages.length > 0) yield messages.shift();
  } finally {
    reader.releaseLock();
  }
}

// ---- running a job --------------------------------------------------------------------------

function setBusy(busy) {
  els.generate.disabled = busy || !info;
  els.cancel.disabled = !busy;
  els.generate.classList.toggle("busy", busy);
  document.body.classList.toggle("busy", busy);
}

function setStatus(ja, en, kind = "") {
  bi(els.status, ja, en);
  els.status.dataset.kind = kind;
}

function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return null;
  if (seconds < 1) return { ja: "1 秒未満", en: "< 1 s" };
  if (seconds < 60) return { ja: `約 ${Math.round(seconds)} 秒`, en: `~${Math.round(seconds)} s` };
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return { ja: `約 ${m} 分 ${s} 秒`, en: `~${m} min ${s} s` };
}

function resetProgress() {
  // No value: the bar shows "busy, amount unknown" until the first step arrives.
  els.progress.removeAttribute("value");
  els.progress.max = 1;
  els.progressText.textContent = "—";
}

function showProgress(job, { image, step, totalSteps, etaSeconds }) {
  if (!totalSteps) return;
  job.totalSteps = totalSteps;
  job.last = { image, step, totalSteps };
  const max = totalSteps * job.images;
  const value = Math.min(max, image * totalSteps + step);
  els.progress.max = max;
  els.progress.value = value;
  els.progress.setAttribute("aria-valuetext", `${Math.round((value / max) * 100)}%`);
  const ja = [`ステップ ${step} / ${totalSteps}`];
  const en = [`step ${step}/${totalSteps}`];
  if (job.images > 1) {
    ja.push(`画像 ${image + 1} / ${job.images}`);
    en.push(`image ${image + 1}/${job.images}`);
  }
  const eta = formatSeconds(etaSeconds);
  if (eta && value < max) {
    ja.push(`残り ${eta.ja}`);
    en.push(`ETA ${eta.en}`);
  }
  bi(els.progressText, ja.join(" · "), `(${en.join(", ")})`);
}

function showPreview(base64) {
  els.preview.src = `data:image/png;base64,${base64}`;
  els.preview.classList.add("latent");
  els.preview.hidden = false;
  els.previewEmpty.hidden = true;
}

/** "Generating…", unless Cancel was pressed (then "Cancelling…" stays until the end). */
function showRunning(job) {
  if (!job.cancelled) setStatus("生成中…", "Generating…", "running");
}

/** A job as GET /v1/jobs/:id (or the stream's first event) shows it; adds the images it lists. */
function showView(job, view) {
  if (view.status === "queued" && !job.cancelled) {
    setStatus(`待機中 (${view.queuePosition} 番目)`, `Queued, position ${view.queuePosition}`, "queued");
  } else if (view.status === "running") {
    showRunning(job);
  }
  if (view.totalSteps) showProgress(job, { image: view.image, step: view.step, totalSteps: view.totalSteps, etaSeconds: view.etaSeconds });
  for (const result of view.results ?? []) job.pending.push(addResult(job, result));
}

async function generate() {
  clearMessage();
  let body;
  try {
    body = readForm();
  } catch (error) {
    showMessage(error.message);
    return;
  }
  setBusy(true);
  resetProgress();
  setStatus("送信中…", "Submitting…", "queued");
  const job = { id: null, body, images: body.numImages, totalSteps: 0, received: new Set(), pending: [], cancelled: false, started: performance.now() };
  running = job;
  try {
    const created = await api("/v1/jobs", { method: "POST", body });
    job.id = created.id;
    job.statusUrl = created.statusUrl;
    job.eventsUrl = created.eventsUrl;
    if (job.cancelled) void sendCancel(job); // Cancel was pressed while the job was being sent
    showView(job, { ...created, results: [] });
    const final = await follow(job);
    // Images whose events went by unseen (the stream joined late or broke): from the job itself.
    try {
      showView(job, { ...(await api(job.statusUrl)), status: final.status, totalSteps: 0 });
    } catch {
      // the job may have been dropped already; the gallery keeps what arrived
    }
    await Promise.allSettled(job.pending);
    finish(job, final);
  } catch (error) {
    setStatus("失敗", "Failed", "failed");
    showMessage(describeError(error));
  } finally {
    running = null;
    setBusy(false);
  }
}

/** Follows a job to its end over SSE, or by polling if the stream is cut; resolves to { status, error }. */
async function follow(job) {
  try {
    const response = await api(job.eventsUrl, { raw: true });
    for await (const message of readEventStream(response)) {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        continue;
      }
      switch (message.event) {
        case "status":
          showView(job, data);
          if (["done", "failed", "cancelled"].includes(data.status)) return { status: data.status, error: data.error };
          break;
        case "started":
          showRunning(job);
          break;
        case "progress":
          showRunning(job);
          showProgress(job, data);
          break;
        case "preview":
          if (typeof data.png === "string") showPreview(data.png);
          break;
        case "image":
          job.pending.push(addResult(job, data));
          break;
        case "finished":
          return { status: data.status, error: data.error };
        default:
          break;
      }
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) throw error;
  }
  return poll(job);
}

async function poll(job) {
  for (;;) {
    const view = await api(job.statusUrl);
    showView(job, view);
    if (["done", "failed", "cancelled"].includes(view.status)) return { status: view.status, error: view.error };
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function finish(job, { status, error }) {
  const seconds = (performance.now() - job.started) / 1000;
  if (status === "done") {
    if (job.totalSteps) {
      els.progress.max = job.totalSteps * job.images;
      els.progress.value = els.progress.max;
    } else {
      els.progress.max = 1;
      els.progress.value = 1;
    }
    setStatus(`完了 (${seconds.toFixed(1)} 秒)`, `Done in ${seconds.toFixed(1)} s`, "done");
  } else if (status === "cancelled") {
    if (job.last) showProgress(job, { ...job.last, etaSeconds: null });
    setStatus("中止しました", "Cancelled", "cancelled");
  } else {
    if (job.last) showProgress(job, { ...job.last, etaSeconds: null });
    setStatus("失敗", "Failed", "failed");
    showMessage(`生成に失敗しました。 ${error?.message ?? "(no message)"}`);
  }
}

async function cancel() {
  const job = running;
  if (!job || job.cancelled) return;
  job.cancelled = true;
  els.cancel.disabled = true;
  setStatus("中止しています…", "Cancelling…", "queued");
  if (job.id) await sendCancel(job);
}

async function sendCancel(job) {
  try {
    await api(`/v1/jobs/${job.id}`, { method: "DELETE" });
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "JSD_CONFLICT")) showMessage(describeError(error));
  }
}

els.form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!running) void generate();
});
els.cancel.addEventListener("click", () => void cancel());
els.form.addEventListener("keydown", (event) => {
  // Ctrl/⌘+Enter generates from inside the prompt boxes too.
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !running && info) {
    event.preventDefault();
    void generate();
  }
});

// ---- gallery ----------------------------------------------------------------------------------

/** Adds a finished image: its PNG fetched with the key (the exact bytes, with their metadata). */
async function addResult(job, result) {
  if (job.received.has(result.index)) return;
  job.received.add(result.index);
  try {
    const response = await api(result.url, { raw: true });
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const seed = String(result.seed);
    lastSeed = seed;
    const settings = { ...job.body };
    delete settings.seed;
    delete settings.numImages;
    const card = galleryCard(job, url, seed, settings, result);
    els.gallery.prepend(card);
    els.galleryEmpty.hidden = true;
    while (els.gallery.children.length > MAX_GALLERY) {
      const old = els.gallery.lastElementChild;
      URL.revokeObjectURL(old.querySelector("img").src);
      old.remove();
    }
    els.preview.src = url;
    els.preview.classList.toggle("latent", false);
    els.preview.hidden = false;
    els.previewEmpty.hidden = true;
  } catch (error) {
    job.received.delete(result.index);
    showMessage(describeError(error));
  }
}

function galleryCard(job, url, seed, settings, result) {
  const width = result.width ?? settings.width;
  const height = result.height ?? settings.height;
  const card = document.createElement("figure");
  card.className = "card";

  const link = document.createElement("a");
  link.href = url;
  link.target = "_blank";
  link.rel = "noopener";
  link.className = "card-image";
  const img = document.createElement("img");
  img.src = url;
  img.width = width;
  img.height = height;
  img.alt = `${settings.prompt || "(no prompt)"} — seed ${seed}`;
  if (Math.max(width, height) < 256) img.classList.add("pixelated");
  link.append(img);

  const caption = document.createElement("figcaption");
  const prompt = document.createElement("p");
  prompt.className = "card-prompt";
  prompt.textContent = settings.prompt || "(プロンプトなし no prompt)";
  prompt.title = settings.prompt;

  const seedLine = document.createElement("p");
  seedLine.className = "card-seed";
  seedLine.append(document.createTextNode("シード Seed "));
  const code = document.createElement("code");
  code.textContent = seed;
  seedLine.append(code);

  const meta = document.createElement("p");
  meta.className = "card-meta";
  const label = info?.samplers.find((s) => s.scheduler === settings.scheduler && Boolean(s.karras) === Boolean(settings.karras))?.name ?? settings.scheduler;
  // stepsDone counts the sampler's UNet calls (PNDM makes steps + 1); fewer than the job's total
  // means the image was stopped early.
  const stopped = job.totalSteps > 0 && result.stepsDone !== undefined && result.stepsDone < job.totalSteps;
  const steps = stopped ? `${settings.steps} steps (stopped at ${result.stepsDone})` : `${settings.steps} steps`;
  meta.textContent = `${width}×${height} · ${label} · ${steps} · CFG ${settings.guidanceScale}`;

  const actions = document.createElement("div");
  actions.className = "card-actions";
  const download = document.createElement("a");
  download.href = url;
  download.download = `jsd-${seed}.png`;
  download.className = "button download";
  bi(download, "保存", "Download");
  const reuse = document.createElement("button");
  reuse.type = "button";
  reuse.className = "reuse";
  bi(reuse, "再利用", "Reuse");
  reuse.title = "この画像の設定とシードをフォームに入れます — Put this image's settings and seed into the form";
  reuse.addEventListener("click", () => {
    applySettings(settings, seed);
    showMessage(`設定を読み込みました (シード ${seed})。 Settings loaded (seed ${seed}).`, "info");
    els.prompt.focus();
    els.form.scrollIntoView({ behavior: "smooth", block: "start" });
  });
  actions.append(download, reuse);

  caption.append(prompt, seedLine, meta, actions);
  card.append(link, caption);
  return card;
}

// ---- start ----------------------------------------------------------------------------------

els.forgetKey.hidden = !apiKey;
updateSeedField();
void loadInfo();
