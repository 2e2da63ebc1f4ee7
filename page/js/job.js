// One job at a time: the form's settings submitted to POST /v1/jobs, the job followed over
// Server-Sent Events (polling if the stream is cut) with its queue position, progress bar, ETA
// and live previews in the run panel, its images handed to the gallery, and Cancel.
import { bi, clearMessage, els, showMessage } from "./dom.js";
import { api, ApiError, describeError } from "./api.js";
import { info } from "./info.js";
import { readForm } from "./form.js";
import { readEventStream } from "./event-stream.js";
import { addResult } from "./gallery.js";

let running = null;

// ---- the run panel ----------------------------------------------------------------------------

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

// ---- the job ----------------------------------------------------------------------------------

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

/** Generate (the button, or Ctrl/⌘+Enter anywhere in the form) and Cancel. */
export function wireJobs() {
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
}
