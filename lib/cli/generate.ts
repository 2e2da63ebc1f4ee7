// `jsd generate "<prompt>"`: images from a prompt with the embedded model or a converted one.
import { type Command, InvalidArgumentError, Option } from "commander";
import { loadModel } from "../model.js";
import type { GenerateOptions } from "../pipeline/options.js";
import { PROMPT_MODES, type PromptMode } from "../prompt/index.js";
import { KARRAS_SCHEDULERS, SCHEDULER_NAMES, type SchedulerName } from "../schedulers/index.js";
import { CliExit, intOption, type CliIo } from "./io.js";
import { addLoadOptions, loadOptionsOf, type LoadFlags } from "./load-flags.js";
import { outputPaths, writeFileAtomic } from "./output-files.js";
import { progressView } from "./progress.js";

interface GenerateFlags extends LoadFlags {
  output: string;
  negative?: string;
  promptMode: PromptMode;
  steps?: number;
  guidance?: number;
  scheduler?: SchedulerName;
  karras?: boolean;
  seed?: bigint;
  size?: { width: number; height: number };
  count: number;
  initImage?: string;
  strength?: number;
  mask?: string;
  eta?: number;
  safetyChecker: boolean;
  json: boolean;
  force: boolean;
  quiet: boolean;
}


function float(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
    return n;
  };
}

function parseSize(value: string): { width: number; height: number } {
  const m = /^(\d+)(?:[x×*](\d+))?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError("expected WIDTHxHEIGHT, e.g. 512x512 (or one number for a square)");
  const width = Number(m[1]);
  const height = Number(m[2] ?? m[1]);
  if (width % 8 !== 0 || height % 8 !== 0 || width < 8 || height < 8) throw new InvalidArgumentError("width and height must be multiples of 8");
  return { width, height };
}

function parseSeed(value: string): bigint {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("seed must be a non-negative integer");
  const seed = BigInt(value);
  if (seed >= 1n << 64n) throw new InvalidArgumentError("seed must be below 2^64");
  return seed;
}

function parseScheduler(value: string): SchedulerName {
  if (!SCHEDULER_NAMES.includes(value as SchedulerName)) throw new InvalidArgumentError(`choose one of ${SCHEDULER_NAMES.join(", ")}`);
  return value as SchedulerName;
}

export function registerGenerate(program: Command, io: CliIo): void {
  const command = program
    .command("generate")
    .alias("gen")
    .description("generate images from a Japanese (or English) prompt")
    .argument("<prompt>", "what to draw, e.g. 白い背景に赤い丸")
    .option("-o, --output <file>", "PNG file to write (numbered names are used instead of overwriting)", "jsd.png")
    .option("--negative <prompt>", "negative prompt: what to avoid")
    .addOption(
      new Option("--prompt-mode <mode>", "reference: rinna's 77-token truncation; extended: long prompts, (emphasis:1.2), BREAK, full-width （）［］：")
        .choices([...PROMPT_MODES])
        .default("reference"),
    )
    .option("--steps <n>", "denoising steps (default 50)", intOption("--steps", 1, 1000))
    .option("--guidance <scale>", "classifier-free guidance scale (default 7.5; ≤ 1 turns it off)", float("--guidance"))
    .option("--scheduler <name>", `sampler: ${SCHEDULER_NAMES.join(", ")} (default pndm)`, parseScheduler)
    .option("--karras", `Karras sigmas (${KARRAS_SCHEDULERS.join(", ")}; dpmpp_2m with --karras is A1111's "DPM++ 2M Karras")`)
    .option("--seed <n>", "random seed (default: random; printed)", parseSeed)
    .option("--size <WxH>", "image size, multiples of 8 (default: the model's, 512x512 for JSD)", parseSize)
    .option("-n, --count <n>", "images to generate in one batch", intOption("--count", 1, 16), 1)
    .option("--init-image <png>", "img2img: start from this PNG")
    .option("--strength <s>", "img2img/inpaint: how much to change the init image, 0 to 1 (default 0.8)", float("--strength"))
    .option("--mask <png>", "inpaint: white = repaint, black = keep (needs --init-image)")
    .option("--eta <eta>", "DDIM eta (default 0)", float("--eta"))
    .option("--no-safety-checker", "do not run the model's safety checker (by default it runs when the model has one, and flagged images come out black)");
  addLoadOptions(command)
    .option("--json", "print one JSON line per image on stdout", false)
    .option("-f, --force", "overwrite existing files", false)
    .option("-q, --quiet", "no progress output", false)
    .action(async (prompt: string, flags: GenerateFlags) => {
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      const model = await loadModel(flags.model, loadOptionsOf(flags));
      const progress = flags.quiet ? undefined : progressView(io, "generating");
      try {
        const options: GenerateOptions = {
          prompt,
          negativePrompt: flags.negative,
          promptMode: flags.promptMode,
          steps: flags.steps,
          guidanceScale: flags.guidance,
          scheduler: flags.scheduler,
          karras: flags.karras,
          seed: flags.seed,
          width: flags.size?.width,
          height: flags.size?.height,
          numImages: flags.count,
          initImage: flags.initImage,
          strength: flags.strength,
          mask: flags.mask,
          eta: flags.eta,
          safetyChecker: flags.safetyChecker,
          signal: controller.signal,
          onProgress: progress ? (p) => progress.update(p) : undefined,
        };
        const started = performance.now();
        let images;
        try {
          images = await model.generate(options);
        } finally {
          progress?.stop();
        }
        const seconds = (performance.now() - started) / 1000;
        const paths = outputPaths(flags.output, images.length, flags.force);
        for (const [i, image] of images.entries()) {
          await writeFileAtomic(paths[i], image.png);
          if (flags.json) {
            const { parameters } = image;
            io.stdout.write(`${JSON.stringify({ path: paths[i], ...parameters, seconds: Number(seconds.toFixed(3)) })}\n`);
          } else {
            const flagged = image.nsfwContentDetected ? "  flagged by the safety checker: written black" : "";
            io.stdout.write(`${paths[i]}  seed ${image.seed}${images.length > 1 ? ` #${i}` : ""}  ${image.width}x${image.height}${flagged}\n`);
          }
        }
        const dropped = images[0]?.droppedTokens ?? 0;
        if (dropped > 0 && !flags.quiet) {
          io.stderr.write(`note: the prompt is longer than 77 tokens; the last ${dropped} were dropped (--prompt-mode extended keeps them)\n`);
        }
        if (!flags.json && !flags.quiet) io.stderr.write(`done in ${seconds.toFixed(1)} s\n`);
      } catch (error) {
        if (controller.signal.aborted) {
          io.stderr.write("jsd: interrupted\n");
          throw new CliExit(130);
        }
        throw error;
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        await model.close();
      }
    });
}
