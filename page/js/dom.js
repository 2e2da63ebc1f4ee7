// The page's elements, found once by id (a missing one is a bug of index.html and throws), the
// bilingual text every part writes, and the message bar above the form. The page's scripts
// never write inline style attributes or <style> blocks (the CSP's style-src 'self' refuses
// them); setting element.style from script is CSSOM and allowed.

const $ = (selector) => {
  const element = document.querySelector(selector);
  if (!element) throw new Error(`page: ${selector} is missing`);
  return element;
};

export const els = {
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
export function bi(parent, ja, en) {
  parent.replaceChildren();
  parent.append(document.createTextNode(ja + " "));
  const span = document.createElement("span");
  span.lang = "en";
  span.textContent = en;
  parent.append(span);
}

// ---- messages ------------------------------------------------------------------------------

export function showMessage(text, kind = "error") {
  els.messageText.textContent = text;
  els.message.dataset.kind = kind;
  els.message.hidden = false;
}

export function clearMessage() {
  els.message.hidden = true;
  els.messageText.textContent = "";
}

/** The message bar's close button. */
export function wireMessages() {
  els.messageClose.addEventListener("click", clearMessage);
}
