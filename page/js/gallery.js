// The gallery of finished images, newest first (at most MAX_GALLERY): each image's PNG fetched
// with the key and shown from a blob: URL (the server's exact bytes, metadata included), with
// its prompt, seed and settings, a Download link and a Reuse button that fills the form again.
import { bi, els, showMessage } from "./dom.js";
import { api, describeError } from "./api.js";
import { info } from "./info.js";
import { applySettings, rememberSeed } from "./form.js";

const MAX_GALLERY = 60;

/** Adds a finished image: its PNG fetched with the key (the exact bytes, with their metadata). */
export async function addResult(job, result) {
  if (job.received.has(result.index)) return;
  job.received.add(result.index);
  try {
    const response = await api(result.url, { raw: true });
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const seed = String(result.seed);
    rememberSeed(seed);
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
  // The server's safety checker blackened this image (its result says so; the PNG's text too).
  const flagged = document.createElement("p");
  flagged.className = "card-flagged";
  flagged.hidden = result.nsfwContentDetected !== true;
  bi(flagged, "セーフティチェッカーが検出したため黒く塗りつぶしました", "Flagged by the safety checker: blacked out");

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

  caption.append(prompt, seedLine, meta, flagged, actions);
  card.append(link, caption);
  return card;
}
