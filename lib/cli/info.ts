// `jsd info <model.gguf> [--json] [--verify]`: what a model file holds.
import { InvalidArgumentError, Option, type Command } from "commander";
import { JsdError } from "../errors.js";
import { checkModelChecksum } from "../verify.js";
import { GgufFile, describeGgufValue } from "../formats/gguf-reader.js";
import { MODEL_ARCHITECTURE, MODEL_KEYS, keysOf, parseSectionKey } from "../formats/model-keys.js";
import { BACKENDS, planModel, type BackendName, type Placement } from "../model.js";
import { CliExit, formatBytes, intOption, type CliIo } from "./io.js";

const COMPONENTS = [
  { key: "text_encoder", prefix: "te.", label: "text encoder" },
  { key: "unet", prefix: "unet.", label: "unet" },
  { key: "vae", prefix: "vae.", label: "vae" },
  { key: "safety_checker", prefix: "sc.", label: "safety checker" },
] as const;

export interface ComponentSummary {
  tensors: number;
  parameters: number;
  bytes: number;
  /** Tensor count per ggml type. */
  types: Record<string, number>;
}

export interface ModelSummary {
  file: string;
  size: number;
  ggufVersion: number;
  architecture: string | null;
  formatVersion: number | null;
  name: string | null;
  fileType: string | null;
  /** q8_0 matrices stored in the CPU kernel's layout (jsd convert --cpu-layout). */
  cpuLayoutTensors: number;
  converter: string | null;
  source: unknown;
  dataSha256: string | null;
  tensors: number;
  components: Record<string, ComponentSummary>;
  tokenizer: { sentencepieceBytes: number; padId: number | null; eosId: number | null; unkId: number | null; doLowerCase: boolean | null; modelMaxLength: number | null } | null;
  /** Whether the file holds the safety checker that generate() runs on each image (jsd convert leaves it out with --no-safety-checker). */
  safetyChecker: boolean;
  /** Numeric/string config values (jsd.<component>.*, the tokenizer's apart), without the verbatim JSON files. */
  config: Record<string, Record<string, unknown>>;
  /** The verbatim config files, parsed. */
  configFiles: Record<string, unknown>;
}

function opt<T>(f: () => T): T | null {
  try {
    return f();
  } catch {
    return null;
  }
}

function parseMaybeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function summarize(file: GgufFile): ModelSummary {
  const components: Record<string, ComponentSummary> = {};
  for (const t of file.tensors) {
    const key = COMPONENTS.find((c) => t.name.startsWith(c.prefix))?.key ?? "other";
    const s = (components[key] ??= { tensors: 0, parameters: 0, bytes: 0, types: {} });
    s.tensors++;
    s.parameters += t.nelements;
    s.bytes += t.nbytes;
    s.types[t.typeName] = (s.types[t.typeName] ?? 0) + 1;
  }
  const config: Record<string, Record<string, unknown>> = {};
  const configFiles: Record<string, unknown> = {};
  for (const [key, value] of file.metadata) {
    const m = parseSectionKey(key);
    if (!m || m.section === "tokenizer") continue;
    if (m.field === "config" && value.type === "string") configFiles[m.section] = parseMaybeJson(value.value);
    else (config[m.section] ??= {})[m.field] = describeGgufValue(value);
  }
  const k = MODEL_KEYS;
  const tokenizerKey = keysOf("tokenizer");
  if (file.has(tokenizerKey("config"))) configFiles.tokenizer = parseMaybeJson(file.getString(tokenizerKey("config")));
  if (file.has(k.modelIndex)) configFiles.model_index = parseMaybeJson(file.getString(k.modelIndex));
  const source = opt(() => file.getString(k.source));
  return {
    file: file.path,
    size: file.fileSize,
    ggufVersion: file.version,
    architecture: opt(() => file.getString(k.architecture)),
    formatVersion: opt(() => file.getNumber(k.formatVersion)),
    name: opt(() => file.getString(k.name)),
    fileType: opt(() => file.getString(k.fileType)),
    cpuLayoutTensors: (file.metadata.get(k.q8Interleaved)?.value as unknown[] | undefined)?.length ?? 0,
    converter: opt(() => file.getString(k.converter)),
    source: source === null ? null : parseMaybeJson(source),
    dataSha256: opt(() => file.getString(k.dataSha256)),
    tensors: file.tensors.length,
    components,
    tokenizer: file.has(tokenizerKey("sentencepiece"))
      ? {
          sentencepieceBytes: opt(() => file.getBytes(tokenizerKey("sentencepiece")).length) ?? 0,
          padId: opt(() => file.getNumber(tokenizerKey("pad_id"))),
          eosId: opt(() => file.getNumber(tokenizerKey("eos_id"))),
          unkId: opt(() => file.getNumber(tokenizerKey("unk_id"))),
          doLowerCase: opt(() => file.getBool(tokenizerKey("do_lower_case"))),
          modelMaxLength: opt(() => file.getNumber(tokenizerKey("model_max_length"))),
        }
      : null,
    safetyChecker: components.safety_checker !== undefined,
    config,
    configFiles,
  };
}

function formatSource(source: unknown): string {
  if (source && typeof source === "object" && "folder" in source) {
    const s = source as { folder: string; weights?: Record<string, { file: string; format: string }> };
    const weights = Object.values(s.weights ?? {})
      .map((w) => `${w.file} (${w.format})`)
      .join(", ");
    return `${s.folder}${weights ? `: ${weights}` : ""}`;
  }
  return String(source);
}

function formatValue(v: unknown): string {
  return Array.isArray(v) ? `[${v.join(", ")}]` : String(v);
}

export function formatSummary(s: ModelSummary): string {
  const lines: string[] = [];
  const kind = s.architecture === MODEL_ARCHITECTURE ? `JSD model, format version ${s.formatVersion ?? "?"}` : `GGUF file (architecture ${s.architecture ?? "unknown"})`;
  lines.push(`${s.file}: ${kind}, GGUF v${s.ggufVersion}, ${formatBytes(s.size)}`);
  if (s.name !== null) lines.push(`  name:        ${s.name}`);
  if (s.fileType !== null) lines.push(`  file type:   ${s.fileType}${s.cpuLayoutTensors ? ` (${s.cpuLayoutTensors} q8_0 matrices in the CPU kernel's layout)` : ""}`);
  if (s.converter !== null) lines.push(`  converter:   ${s.converter}`);
  if (s.source !== null) lines.push(`  source:      ${formatSource(s.source)}`);
  if (s.dataSha256 !== null) lines.push(`  data sha256: ${s.dataSha256}`);
  if (s.tokenizer) {
    const t = s.tokenizer;
    lines.push(
      `  tokenizer:   sentencepiece (${formatBytes(t.sentencepieceBytes)}), pad ${t.padId} eos ${t.eosId} unk ${t.unkId}, ` +
        `lower case ${t.doLowerCase}, max length ${t.modelMaxLength}`,
    );
  }
  lines.push(
    s.safetyChecker
      ? "  safety:      a safety checker: generate() checks each image and blackens flagged ones (safetyChecker: false turns it off)"
      : "  safety:      no safety checker (converted without one): generate() checks nothing",
  );
  lines.push("");
  lines.push(`  ${"component".padEnd(13)} ${"tensors".padStart(7)} ${"parameters".padStart(13)} ${"size".padStart(10)}  types`);
  for (const key of [...COMPONENTS.map((c) => c.key), "other"]) {
    const c = s.components[key];
    if (!c) continue;
    const label = COMPONENTS.find((x) => x.key === key)?.label ?? key;
    const types = Object.entries(c.types)
      .sort((a, b) => b[1] - a[1])
      .map(([t, n]) => `${t} ${n}`)
      .join(", ");
    lines.push(`  ${label.padEnd(13)} ${String(c.tensors).padStart(7)} ${c.parameters.toLocaleString("en-US").padStart(13)} ${formatBytes(c.bytes).padStart(10)}  ${types}`);
  }
  for (const [component, values] of Object.entries(s.config)) {
    lines.push("");
    lines.push(`  ${component}:`);
    for (const [k, v] of Object.entries(values)) lines.push(`    ${k.padEnd(24)} ${formatValue(v)}`);
  }
  const scheduler = s.configFiles.scheduler as { _class_name?: string } | undefined;
  if (scheduler && typeof scheduler === "object") {
    lines.push("");
    lines.push(`  scheduler:   ${scheduler._class_name ?? "?"}`);
  }
  return `${lines.join("\n")}\n`;
}

/** A placement plan as lines: each network's place, device bytes and why. */
export function formatPlacement(plan: Placement): string {
  const lines = plan.networks.map((n) => {
    const bytes = plan.gpu || n.weightBytes > 0 ? `  weights ${formatBytes(n.weightBytes)}, compute ${formatBytes(n.computeBytes)}` : "";
    return `  ${n.name.padEnd(13)}${(n.onCpu ? "cpu" : "gpu").padEnd(5)}${bytes}  (${n.reason})`;
  });
  const total = plan.gpu ? `  on the device at its peak: ${formatBytes(plan.deviceBytes)} of ${formatBytes(plan.deviceBudget)}` : "  everything on the CPU";
  return `placement:
${lines.join("\n")}
${total}
`;
}

function size(value: string): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/.exec(value);
  if (!m) throw new InvalidArgumentError("--size must be WIDTHxHEIGHT, e.g. 512x512");
  return { width: Number(m[1]), height: Number(m[2]) };
}

export function registerInfo(program: Command, io: CliIo): void {
  program
    .command("info")
    .description("show what a model file holds: components, configs, tensor types and sizes")
    .argument("<model>", "model file (.gguf)")
    .option("--json", "print JSON", false)
    .option("--verify", `recompute the data checksum and compare it with ${MODEL_KEYS.dataSha256}`, false)
    .option("--plan", "also show where loadModel would place each network (GPU or CPU) and the device memory it needs", false)
    .addOption(new Option("--backend <name>", "backend for --plan").choices([...BACKENDS]).default("auto"))
    .option("--size <WxH>", "image size --plan makes room for (default: the model's own)", size)
    .option("--device-memory <MiB>", "device memory --plan may use (default: the device's free memory)", intOption("--device-memory", 1, 1 << 24))
    .action(async (path: string, opts: { json: boolean; verify: boolean; plan: boolean; backend: BackendName; size?: { width: number; height: number }; deviceMemory?: number }) => {
      if (opts.plan) {
        const plan = await planModel(path, { backend: opts.backend, plannedSize: opts.size, deviceMemoryLimit: opts.deviceMemory === undefined ? undefined : opts.deviceMemory * 2 ** 20 });
        if (opts.json) {
          io.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
          return;
        }
        io.stdout.write(`${formatPlacement(plan)}\n`);
      }
      const file = await GgufFile.open(path);
      try {
        const summary = summarize(file);
        let verified: boolean | undefined;
        if (opts.verify) {
          if (summary.dataSha256 === null) throw new JsdError("JSD_BAD_MODEL", `${path} has no ${MODEL_KEYS.dataSha256} to verify`);
          verified = (await checkModelChecksum(file)).ok;
        }
        if (opts.json) io.stdout.write(`${JSON.stringify(verified === undefined ? summary : { ...summary, verified }, null, 2)}\n`);
        else {
          io.stdout.write(formatSummary(summary));
          if (verified !== undefined) io.stdout.write(`\n  checksum:    ${verified ? "OK" : "MISMATCH"}\n`);
        }
        if (verified === false) {
          io.stderr.write(`jsd: ${path}: the tensor data does not match ${MODEL_KEYS.dataSha256} (corrupted file)\n`);
          throw new CliExit(1);
        }
      } finally {
        await file.close();
      }
    });
}
