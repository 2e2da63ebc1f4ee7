// The server's facts from GET /v1/info (model, backend, version, limits, samplers, prompt modes):
// null until they arrive, set once when the form is filled from them, read by every module whose
// behaviour depends on them; and the header line that shows them.
import { els } from "./dom.js";

export let info = null;

export function setInfo(next) {
  info = next;
}

export function showServerInfo() {
  if (!info) return;
  const parts = [`モデル ${info.model ?? "?"}`, info.backend, `v${info.version}`];
  els.serverInfo.textContent = parts.join(" · ");
  els.serverInfo.title = `Model ${info.model ?? "?"}, backend ${info.backend}, version ${info.version}`;
}
