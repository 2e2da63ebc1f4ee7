// The page at / of `jsd serve`: a form for generate()'s options, a job followed live over
// Server-Sent Events (progress, previews, images), and a gallery of the results. Plain browser
// JavaScript in ES modules, no build step; the server serves each file of page/ under a fixed
// route (lib/server/page.ts, PAGE_FILES) and its Content-Security-Policy allows scripts only
// from the page's own origin. This file wires the modules in js/ together and starts the page:
//
//   js/dom.js           the page's elements, bilingual text, the message bar
//   js/info.js          the server's facts (GET /v1/info) and the header line showing them
//   js/api.js           calls to the API: the API key, fetch, the server's errors
//   js/tokens.js        the prompts' token counters
//   js/form.js          the options form: filled from the server's facts, read, refilled (Reuse)
//   js/event-stream.js  Server-Sent Events read from a fetch Response
//   js/job.js           submitting a job and following it: status, progress, previews, Cancel
//   js/gallery.js       the finished images: Download and Reuse
import { bi, els, showMessage, wireMessages } from "./js/dom.js";
import { api, describeError, wireKey } from "./js/api.js";
import { applyInfo, wireForm } from "./js/form.js";
import { refreshTokens, wireTokens } from "./js/tokens.js";
import { wireJobs } from "./js/job.js";

async function loadInfo() {
  try {
    applyInfo(await api("/v1/info"));
    refreshTokens();
  } catch (error) {
    bi(els.serverInfo, "接続できません", "Not connected");
    showMessage(describeError(error));
  }
}

wireMessages();
wireKey();
wireForm();
wireTokens();
wireJobs();
void loadInfo();
