// Generation progress on stderr: a bar with step, it/s and ETA on a terminal (cli-progress),
// plain lines otherwise (logs, CI, pipes).
import cliProgress from "cli-progress";
import type { GenerateProgress } from "../pipeline/options.js";
import type { CliIo } from "./io.js";

export interface ProgressView {
  update(p: GenerateProgress): void;
  stop(): void;
}

export function progressView(io: CliIo, label: string): ProgressView {
  if (io.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream: io.stderr as NodeJS.WritableStream,
        format: `${label} |{bar}| {value}/{total} steps  {speed} it/s  ETA {eta_formatted}`,
        barsize: 24,
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(p) {
        const speed = p.elapsedMs > 0 ? ((p.step * 1000) / p.elapsedMs).toFixed(2) : "-";
        if (!started) {
          bar.start(p.totalSteps, p.step, { speed });
          started = true;
        } else bar.update(p.step, { speed });
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let lastTenth = -1;
  return {
    update(p) {
      // Logs get the first step, every tenth of the run and the last step.
      const tenth = Math.floor((10 * p.step) / p.totalSteps);
      if (p.step !== 1 && tenth === lastTenth && p.step !== p.totalSteps) return;
      lastTenth = tenth;
      const rate = p.elapsedMs > 0 ? (p.step * 1000) / p.elapsedMs : 0;
      const eta = rate > 0 ? (p.totalSteps - p.step) / rate : 0;
      io.stderr.write(`${label} step ${p.step}/${p.totalSteps}  ${rate.toFixed(2)} it/s  ETA ${eta.toFixed(1)} s\n`);
    },
    stop() {},
  };
}
