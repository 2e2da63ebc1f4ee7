// Reference case files, in the format of the fixtures' reference/ folder: safetensors files
// whose metadata names their `kind`, plus tokenizer.json. A folder is searched recursively.
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { JsdError } from "../errors.js";
import { readSafetensors, type RawTensor } from "../formats/safetensors.js";

export interface CaseFile {
  path: string;
  name: string;
  kind: string;
  metadata: Record<string, string>;
  tensors: Map<string, RawTensor>;
  /** For JSON case files (tokenizer.json, the JSON companions of schedulers / torch_rng). */
  json?: unknown;
}

async function listFiles(path: string): Promise<string[]> {
  const info = await stat(path).catch((error) => {
    throw new JsdError("JSD_NOT_FOUND", `cases not found: ${path}`, { cause: error });
  });
  if (!info.isDirectory()) return [path];
  const out: string[] = [];
  for (const entry of (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = join(path, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(full)));
    else out.push(full);
  }
  return out;
}

/** JSON.parse, keeping seeds too big for a double exact (as strings). */
function parseJson(text: string): unknown {
  return JSON.parse(text.replace(/("seed"\s*:\s*)(\d{16,})/g, '$1"$2"'));
}

async function readJsonCompanion(path: string): Promise<unknown | undefined> {
  const companion = path.replace(/\.safetensors$/, ".json");
  try {
    return parseJson(await readFile(companion, "utf8"));
  } catch {
    return undefined;
  }
}

/** Reads every case file under path (a file or a folder). */
export async function readCases(path: string): Promise<CaseFile[]> {
  const cases: CaseFile[] = [];
  for (const file of await listFiles(path)) {
    const name = basename(file).replace(/\.(safetensors|json)$/, "");
    if (file.endsWith(".safetensors")) {
      const { tensors, metadata } = await readSafetensors(file);
      const kind = metadata.kind ?? "unknown";
      cases.push({ path: file, name, kind, metadata, tensors, json: await readJsonCompanion(file) });
    } else if (file.endsWith(".json")) {
      const json = parseJson(await readFile(file, "utf8")) as { kind?: string };
      // JSON files that accompany a .safetensors case are read with it, not on their own.
      if (json?.kind === "tokenizer") cases.push({ path: file, name, kind: "tokenizer", metadata: {}, tensors: new Map(), json });
    }
  }
  return cases;
}
