// Matches the checkpoints' tensors against what the configs imply, before anything is written:
// every expected tensor present once, no unknown tensor, float dtypes, shapes as the configs say.
// The result is the output tensor list, in a fixed order (text encoder, UNet, VAE, then the optional
// safety checker; module order).
import { JsdError } from "../errors.js";
import type { CheckpointReader } from "../formats/checkpoint.js";
import type { SafetensorsDtype } from "../formats/safetensors.js";
import { safetyCheckerTensors, textEncoderTensors, unetTensors, vaeTensors, type ArchTensor, type Component, type TensorRole } from "./architecture.js";
import { FLOAT_DTYPES } from "./dtype.js";
import type { DiffusersFolder } from "./folder.js";
import { internalName, isDroppedBuffer } from "./names.js";
import { layoutFor, type OutputType, type TensorLayout } from "./type-rule.js";

/** The components every model file has, in the file's order; the safety checker follows when there is one. */
export const COMPONENTS: readonly Component[] = ["text_encoder", "unet", "vae"];

/** The components of this folder's model file, in the file's order. */
export function componentsOf(folder: Pick<DiffusersFolder, "safetyChecker">): Component[] {
  return folder.safetyChecker ? [...COMPONENTS, "safety_checker"] : [...COMPONENTS];
}

export interface PlannedTensor {
  component: Component;
  /** Name in the checkpoint. */
  sourceName: string;
  /** Name in the model file. */
  name: string;
  role: TensorRole;
  sourceShape: number[];
  sourceDtype: SafetensorsDtype;
  layout: TensorLayout;
}

export function expectedTensors(folder: Pick<DiffusersFolder, "textEncoder" | "unet" | "vae" | "safetyChecker">): Partial<Record<Component, ArchTensor[]>> {
  return {
    text_encoder: textEncoderTensors(folder.textEncoder),
    unet: unetTensors(folder.unet),
    vae: vaeTensors(folder.vae),
    ...(folder.safetyChecker ? { safety_checker: safetyCheckerTensors(folder.safetyChecker.config) } : {}),
  };
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

function shapeMatches(arch: ArchTensor, shape: readonly number[]): boolean {
  if (arch.role === "projection") {
    const [o, i] = arch.shape;
    return sameShape(shape, [o, i]) || sameShape(shape, [o, i, 1, 1]);
  }
  return sameShape(shape, arch.shape);
}

function list(names: string[], max = 5): string {
  const shown = names.slice(0, max).map((n) => `'${n}'`).join(", ");
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

/** Validates one component's checkpoint and returns its output tensors. */
export function planComponent(
  component: Component,
  reader: Pick<CheckpointReader, "names" | "info">,
  relativePath: string,
  expected: readonly ArchTensor[],
  type: OutputType,
): PlannedTensor[] {
  const configFile = `${component}/config.json`;
  const byInternal = new Map<string, ArchTensor>();
  for (const t of expected) {
    if (t.role === "buffer") continue;
    const name = internalName(component, t.name);
    if (name === undefined) throw new JsdError("JSD_INTERNAL", `no internal name for ${component} tensor '${t.name}'`);
    byInternal.set(name, t);
  }
  const found = new Map<string, { sourceName: string; shape: number[]; dtype: SafetensorsDtype }>();
  const unexpected: string[] = [];
  for (const sourceName of reader.names()) {
    if (isDroppedBuffer(component, sourceName)) continue;
    const name = internalName(component, sourceName);
    if (name === undefined || !byInternal.has(name)) {
      unexpected.push(sourceName);
      continue;
    }
    const previous = found.get(name);
    if (previous) {
      throw new JsdError("JSD_BAD_MODEL", `${relativePath} holds both '${previous.sourceName}' and '${sourceName}', which are the same weight`);
    }
    const info = reader.info(sourceName);
    const arch = byInternal.get(name)!;
    if (!FLOAT_DTYPES.has(info.dtype)) {
      throw new JsdError("JSD_BAD_MODEL", `${relativePath}: tensor '${sourceName}' has dtype ${info.dtype}; weights must be F32, F16 or BF16`);
    }
    if (!shapeMatches(arch, info.shape)) {
      throw new JsdError(
        "JSD_BAD_MODEL",
        `${relativePath}: tensor '${sourceName}' has shape ${JSON.stringify(info.shape)} but ${configFile} implies ${JSON.stringify(arch.shape)} (do the weights match the config?)`,
      );
    }
    found.set(name, { sourceName, shape: [...info.shape], dtype: info.dtype });
  }
  if (unexpected.length > 0) {
    throw new JsdError(
      "JSD_BAD_MODEL",
      `${relativePath} holds ${unexpected.length} tensor(s) that ${configFile} does not describe: ${list(unexpected)} (is this a JSD / SD v1 ${component}?)`,
    );
  }
  const missing = [...byInternal.entries()].filter(([name]) => !found.has(name)).map(([, t]) => t.name);
  if (missing.length > 0) {
    throw new JsdError("JSD_BAD_MODEL", `${relativePath} lacks ${missing.length} tensor(s) that ${configFile} requires: ${list(missing)}`);
  }
  const planned: PlannedTensor[] = [];
  for (const [name, arch] of byInternal) {
    const src = found.get(name)!;
    planned.push({
      component,
      sourceName: src.sourceName,
      name,
      role: arch.role,
      sourceShape: src.shape,
      sourceDtype: src.dtype,
      layout: layoutFor(arch.role, src.shape, type),
    });
  }
  return planned;
}
