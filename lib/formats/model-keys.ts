// The model file's metadata key names and format version (docs/model-format.md), typed. The one
// definition is native/model/model_keys.json: this module reads it at run time and CMake turns it
// into the engine's model/model_keys.h, so the converter, the readers and the C++ loader cannot
// disagree on a key. No other source spells a key (test/model-keys.test.ts keeps it so).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { JsdError } from "../errors.js";
import { packageRoot } from "../package-root.js";

/** The file-wide keys this package refers to by name; the JSON's "keys" must be exactly these. */
const KEY_NAMES = ["architecture", "name", "alignment", "formatVersion", "converter", "source", "fileType", "modelIndex", "dataSha256", "embeddings", "q8Interleaved"] as const;
export type ModelKeyName = (typeof KEY_NAMES)[number];

/** The per-component groups of keys ("jsd.<section>.<field>"); the JSON's "sections" must be exactly these. */
const SECTIONS = ["tokenizer", "text_encoder", "unet", "vae", "scheduler", "safety_checker", "feature_extractor"] as const;
export type ModelSection = (typeof SECTIONS)[number];

export interface ModelKeyTable {
  formatVersion: number;
  /** general.architecture's value, and the prefix of every section key. */
  architecture: string;
  keys: Readonly<Record<ModelKeyName, string>>;
  optionalKeys: readonly ModelKeyName[];
  /** Sections a file may lack as a whole (a file with one has every field of it). */
  optionalSections: readonly ModelSection[];
  sections: Readonly<Record<ModelSection, readonly string[]>>;
}

/** Where the definition lives, for messages and for tests. */
export const MODEL_KEYS_JSON = join(packageRoot, "native", "model", "model_keys.json");

// The same rules as native/model/model_keys.cmake: names become C++ identifiers, keys C++ strings.
const IDENTIFIER = /^[a-z][a-z0-9_]*$/i;
const KEY = /^[a-z0-9_.]+$/;

function tableError(why: string): never {
  throw new JsdError("JSD_INTERNAL", `${MODEL_KEYS_JSON}: ${why}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function sameNames(actual: readonly string[], expected: readonly string[], what: string): void {
  const missing = expected.filter((n) => !actual.includes(n));
  const extra = actual.filter((n) => !(expected as readonly string[]).includes(n));
  if (missing.length > 0 || extra.length > 0) {
    tableError(`${what} must be exactly ${expected.join(", ")} (missing: ${missing.join(", ") || "none"}; unknown: ${extra.join(", ") || "none"})`);
  }
}

/** Checks the parsed JSON against the types above: a typo in the definition fails at once, by name. */
export function parseModelKeys(json: unknown): ModelKeyTable {
  if (!isRecord(json)) tableError("not a JSON object");
  const { formatVersion, architecture, keys, optionalKeys, optionalSections, sections } = json;
  if (typeof formatVersion !== "number" || !Number.isInteger(formatVersion) || formatVersion < 1) tableError("formatVersion must be a positive integer");
  if (typeof architecture !== "string" || !/^[a-z0-9_]+$/.test(architecture)) tableError("architecture must be a lower-case name");

  if (!isRecord(keys)) tableError("keys must map names to keys");
  sameNames(Object.keys(keys), KEY_NAMES, "keys");
  for (const [name, key] of Object.entries(keys)) {
    if (typeof key !== "string" || !KEY.test(key)) tableError(`keys.${name} must be a key of ${KEY}`);
  }
  if (!Array.isArray(optionalKeys) || !optionalKeys.every((n) => (KEY_NAMES as readonly unknown[]).includes(n))) {
    tableError("optionalKeys must list names of keys");
  }
  if (!Array.isArray(optionalSections) || !optionalSections.every((n) => (SECTIONS as readonly unknown[]).includes(n))) {
    tableError("optionalSections must list names of sections");
  }

  if (!isRecord(sections)) tableError("sections must map sections to their fields");
  sameNames(Object.keys(sections), SECTIONS, "sections");
  for (const [section, fields] of Object.entries(sections)) {
    if (!Array.isArray(fields) || fields.length === 0 || !fields.every((f) => typeof f === "string" && IDENTIFIER.test(f))) {
      tableError(`sections.${section} must list its fields (names of ${IDENTIFIER})`);
    }
  }
  const table: ModelKeyTable = {
    formatVersion,
    architecture,
    keys: keys as Record<ModelKeyName, string>,
    optionalKeys: optionalKeys as ModelKeyName[],
    optionalSections: optionalSections as ModelSection[],
    sections: sections as Record<ModelSection, string[]>,
  };
  const all = allKeys(table);
  if (new Set(all).size !== all.length) tableError("a key is defined twice");
  return table;
}

function sectionKeyOf(table: ModelKeyTable, section: ModelSection, field: string): string {
  return `${table.architecture}.${section}.${field}`;
}

function allKeys(table: ModelKeyTable): string[] {
  return [...Object.values(table.keys), ...SECTIONS.flatMap((s) => table.sections[s].map((f) => sectionKeyOf(table, s, f)))];
}

const table = parseModelKeys(JSON.parse(readFileSync(MODEL_KEYS_JSON, "utf8")));

/** The model format version the converter writes and the engine reads (MODEL_KEYS.formatVersion). */
export const MODEL_FORMAT_VERSION: number = table.formatVersion;
/** general.architecture's value in a JSD model file (MODEL_KEYS.architecture). */
export const MODEL_ARCHITECTURE: string = table.architecture;
/** The file-wide keys by name: MODEL_KEYS.dataSha256 is "jsd.data_sha256". */
export const MODEL_KEYS: Readonly<Record<ModelKeyName, string>> = Object.freeze({ ...table.keys });
export const MODEL_SECTIONS: readonly ModelSection[] = SECTIONS;

/** A section's fields, in the definition's order. */
export function sectionFields(section: ModelSection): readonly string[] {
  return table.sections[section];
}

/** The key of a section's field: sectionKey("unet", "block_out_channels") is "jsd.unet.block_out_channels". Throws for a field the definition lacks. */
export function sectionKey(section: ModelSection, field: string): string {
  if (!table.sections[section]?.includes(field)) throw new JsdError("JSD_INTERNAL", `${MODEL_KEYS_JSON} defines no field '${field}' in section '${section}'`);
  return sectionKeyOf(table, section, field);
}

/** sectionKey with the section fixed: keysOf("unet")("in_channels") is "jsd.unet.in_channels". */
export function keysOf(section: ModelSection): (field: string) => string {
  return (field) => sectionKey(section, field);
}

/** The section and field of a key under "<architecture>.<section>.", defined or not (a newer file's), or undefined. */
export function parseSectionKey(key: string): { section: ModelSection; field: string } | undefined {
  for (const section of SECTIONS) {
    const prefix = `${table.architecture}.${section}.`;
    if (key.startsWith(prefix) && key.length > prefix.length) return { section, field: key.slice(prefix.length) };
  }
  return undefined;
}

/** Every key the definition names, file-wide first, then each section's. */
export const ALL_MODEL_KEYS: readonly string[] = allKeys(table);
/** The sections a converted file may lack as a whole: the safety checker and its feature extractor. */
export const OPTIONAL_SECTIONS: readonly ModelSection[] = table.optionalSections;

/** The keys every converted file holds (all but the optional keys and the optional sections' keys). */
export const REQUIRED_MODEL_KEYS: readonly string[] = ALL_MODEL_KEYS.filter(
  (k) => !table.optionalKeys.some((n) => table.keys[n] === k) && !table.optionalSections.some((s) => k.startsWith(`${table.architecture}.${s}.`)),
);
