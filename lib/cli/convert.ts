// `jsd convert <diffusers-folder> -o <out.gguf> [--type T] [--vae-type T] [--text-encoder-type T] [--cpu-layout]
//   [--safety-checker-type T | --no-safety-checker] [--force]`
import type { Command } from "commander";
import { convert, OUTPUT_TYPES, parseOutputType, type ConvertProgress } from "../convert/index.js";
import { formatBytes, type CliIo } from "./io.js";

/** A progress line on stderr: rewritten in place on a terminal, every 10% otherwise. */
function progressReporter(io: CliIo): { update(p: ConvertProgress): void; done(): void } {
  const tty = io.stderr.isTTY === true;
  let lastDecile = -1;
  let shown = false;
  return {
    update(p) {
      const done = p.index + 1;
      const percent = Math.floor((done * 100) / p.total);
      const line = `[${String(done).padStart(String(p.total).length)}/${p.total}] ${String(percent).padStart(3)}% ${formatBytes(p.bytesWritten)}  ${p.tensor}`;
      if (tty) {
        const width = Math.max(20, (io.stderr.columns ?? 100) - 1);
        io.stderr.write(`\r\x1b[K${line.slice(0, width)}`);
        shown = true;
      } else if (Math.floor(percent / 10) > lastDecile) {
        lastDecile = Math.floor(percent / 10);
        io.stderr.write(`${line}\n`);
      }
    },
    done() {
      if (tty && shown) io.stderr.write("\r\x1b[K");
    },
  };
}

export function registerConvert(program: Command, io: CliIo): void {
  program
    .command("convert")
    .description("convert a diffusers Japanese Stable Diffusion folder to a single model file (GGUF)")
    .argument("<diffusers-folder>", "folder with model_index.json, text_encoder/, unet/, vae/, tokenizer/, scheduler/")
    .requiredOption("-o, --output <file>", "model file to write (.gguf)")
    .option("-t, --type <type>", `type of the UNet and text encoder weights (${OUTPUT_TYPES.join(", ")})`, "f16")
    .option("--vae-type <type>", "type of the VAE weights", "f16")
    .option("--text-encoder-type <type>", "type of the text encoder weights (default: --type)")
    .option("--safety-checker-type <type>", "type of the safety checker's matrices (default: the text encoder's)")
    .option("--no-safety-checker", "leave out the safety checker and its feature extractor even when model_index.json names them (rinna's does)")
    .option(
      "--cpu-layout",
      "store q8_0 matrices in the layout of the AVX-512 VNNI CPU kernel: used in place there (faster load, less memory); other backends reorder them at load",
      false,
    )
    .option("-f, --force", "replace the output file if it exists", false)
    .option("-q, --quiet", "no progress output", false)
    .action(async (folder: string, opts: { output: string; type: string; vaeType: string; textEncoderType?: string; cpuLayout: boolean; safetyChecker: boolean; safetyCheckerType?: string; force: boolean; quiet: boolean }) => {
      // Check the types before any work so that a typo fails at once.
      parseOutputType(opts.type, "--type");
      parseOutputType(opts.vaeType, "--vae-type");
      if (opts.textEncoderType !== undefined) parseOutputType(opts.textEncoderType, "--text-encoder-type");
      if (opts.safetyCheckerType !== undefined) parseOutputType(opts.safetyCheckerType, "--safety-checker-type");
      const controller = new AbortController();
      const onSignal = () => controller.abort(new Error("interrupted"));  // an uncoded cause: wrapped in a coded error before it leaves the package
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      const progress = opts.quiet ? undefined : progressReporter(io);
      try {
        const result = await convert(folder, opts.output, {
          type: opts.type,
          vaeType: opts.vaeType,
          textEncoderType: opts.textEncoderType,
          cpuLayout: opts.cpuLayout,
          safetyChecker: opts.safetyChecker,
          safetyCheckerType: opts.safetyCheckerType,
          force: opts.force,
          signal: controller.signal,
          onProgress: progress ? (p) => progress.update(p) : undefined,
        });
        progress?.done();
        const types = Object.entries(result.tensorTypes)
          .map(([t, n]) => `${t} ${n}`)
          .join(", ");
        if (!opts.quiet) {
          io.stderr.write(`wrote ${result.path}: ${formatBytes(result.size)}, ${result.tensors} tensors (${types}) in ${result.seconds.toFixed(1)} s\n`);
        }
      } catch (error) {
        progress?.done();
        throw error;
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });
}
