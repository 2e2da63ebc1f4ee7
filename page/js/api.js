// Calls to the server's API: the API key (kept in localStorage, asked for in the key panel when
// the server answers 401), fetch with the key, and the server's refusals as ApiError with its
// code and message, described for the person by describeError.
import { bi, els, showMessage } from "./dom.js";
import { info } from "./info.js";

const KEY_STORAGE = "jsd.apiKey";

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export function describeError(error) {
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

/** The key panel's form and the footer's Forget API key button (shown while a key is kept). */
export function wireKey() {
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

  els.forgetKey.hidden = !apiKey;
}

// ---- calls ----------------------------------------------------------------------------------

/**
 * Calls the API with the key, if any. A 401 asks for the key and tries again with it; other
 * refusals throw ApiError with the server's code and message. `raw` returns the Response.
 */
export async function api(path, { method = "GET", body, signal, raw = false } = {}) {
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
