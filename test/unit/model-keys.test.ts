// The model file's key names have one owner, native/model/model_keys.json: the converter writes
// exactly the keys it defines, the C++ header CMake generates from it agrees, and no source in
// lib/, native/, binding/ or scripts/ spells a key (or the format version) itself.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { buildMetadata } from "../../lib/convert/metadata.js";
import { readDiffusersFolder } from "../../lib/convert/folder.js";
import {
  ALL_MODEL_KEYS,
  MODEL_ARCHITECTURE,
  MODEL_FORMAT_VERSION,
  MODEL_KEYS,
  MODEL_KEYS_JSON,
  MODEL_SECTIONS,
  OPTIONAL_SECTIONS,
  REQUIRED_MODEL_KEYS,
  parseModelKeys,
  parseSectionKey,
  sectionFields,
  sectionKey,
} from "../../lib/formats/model-keys.js";
import { packageRoot } from "../../lib/package-root.js";
import { tinyJsd, tinySafetyFolder } from "../helpers/models.js";

const definition = JSON.parse(readFileSync(MODEL_KEYS_JSON, "utf8")) as Record<string, unknown>;

describe("the definition (native/model/model_keys.json)", () => {
  it("is read by lib/formats/model-keys.ts", () => {
    expect(MODEL_FORMAT_VERSION).toBe(definition.formatVersion);
    expect(MODEL_ARCHITECTURE).toBe("jsd");
    expect(MODEL_KEYS.dataSha256).toBe("jsd.data_sha256");
    expect(sectionKey("unet", "block_out_channels")).toBe("jsd.unet.block_out_channels");
    expect(parseSectionKey("jsd.vae.scaling_factor")).toEqual({ section: "vae", field: "scaling_factor" });
    expect(parseSectionKey(MODEL_KEYS.dataSha256)).toBeUndefined();
    expect(() => sectionKey("unet", "no_such_field")).toThrow(/defines no field 'no_such_field' in section 'unet'/);
    expect(new Set(ALL_MODEL_KEYS).size).toBe(ALL_MODEL_KEYS.length);
    expect(OPTIONAL_SECTIONS).toEqual(["safety_checker", "feature_extractor"]);
    const optionalSectionKeys = OPTIONAL_SECTIONS.flatMap((s) => sectionFields(s).map((f) => sectionKey(s, f)));
    expect(ALL_MODEL_KEYS.filter((k) => !REQUIRED_MODEL_KEYS.includes(k))).toEqual([MODEL_KEYS.q8Interleaved, ...optionalSectionKeys]);
  });

  it("refuses a definition of the wrong shape, by name", () => {
    const bad = (edit: Record<string, unknown>) => () => parseModelKeys({ ...definition, ...edit });
    expect(bad({ formatVersion: "1" })).toThrow(/formatVersion must be a positive integer/);
    expect(bad({ keys: { ...(definition.keys as object), extra: "jsd.extra" } })).toThrow(/unknown: extra/);
    expect(bad({ keys: { ...(definition.keys as object), dataSha256: "jsd.data sha" } })).toThrow(/keys.dataSha256 must be a key/);
    expect(bad({ sections: { ...(definition.sections as object), vae: [] } })).toThrow(/sections.vae must list its fields/);
    expect(bad({ sections: { ...(definition.sections as object), unet: ["config", "config"] } })).toThrow(/defined twice/);
    expect(bad({ optionalKeys: ["nope"] })).toThrow(/optionalKeys/);
    expect(bad({ optionalSections: ["nope"] })).toThrow(/optionalSections/);
  });

  it("the converter writes exactly the keys it defines", async () => {
    const folder = await readDiffusersFolder(tinyJsd);
    // Fixed ids: reading them from spiece.model takes the addon, and the keys do not depend on them.
    const ids = { pad: 0, eos: 1, unk: 2, vocabSize: folder.textEncoder.vocabSize };
    const embeddings = ["te.embeddings.token_embedding.weight", "te.embeddings.position_embedding.weight"];
    const written = buildMetadata(folder, "f16", ids, embeddings).map(([key]) => key);
    expect(new Set(written).size).toBe(written.length);
    expect([...written].sort()).toEqual([...REQUIRED_MODEL_KEYS].sort());
    // A safety checker adds its two sections, --cpu-layout the one optional key: together, every key.
    const withChecker = await readDiffusersFolder(tinySafetyFolder());
    const all = buildMetadata(withChecker, "q8_0", ids, embeddings, ["unet.conv_in.weight"]).map(([key]) => key);
    expect([...all].sort()).toEqual([...ALL_MODEL_KEYS].sort());
  });

  it("docs/model-format.md documents each of them", () => {
    const doc = readFileSync(join(packageRoot, "docs", "model-format.md"), "utf8");
    const table = doc.split("## Key/value metadata")[1].split("\n## ")[0];
    const documented: string[] = [];
    for (const row of table.split("\n").filter((l) => l.startsWith("| `"))) {
      // `jsd.tokenizer.pad_id`, `.eos_id`: a name after the first is relative to its prefix.
      const [first, ...more] = [...row.split("|")[1].matchAll(/`([^`]+)`/g)].map((m) => m[1]);
      documented.push(first, ...more.map((m) => first.slice(0, first.lastIndexOf(".")) + m));
    }
    expect([...documented].sort()).toEqual([...ALL_MODEL_KEYS].sort());
  });

  // CMake writes model/model_keys.h at configure time (native/model/model_keys.cmake).
  const header = join(packageRoot, process.env.JSD_BUILD_DIR || "build", "generated", "model", "model_keys.h");
  it.skipIf(!existsSync(header))("the C++ header CMake generated from it names the same keys", () => {
    const text = readFileSync(header, "utf8");
    expect(text).toContain("Generated from native/model/model_keys.json by CMakeLists.txt");
    expect(text).toContain(`inline constexpr uint32_t kModelFormatVersion = ${MODEL_FORMAT_VERSION};`);
    expect(text).toContain(`inline constexpr const char* kModelArchitecture = "${MODEL_ARCHITECTURE}";`);
    const strings = [...text.matchAll(/inline constexpr const char\* (\w+) = "([^"]*)";/g)].map((m) => [m[1], m[2]]);
    const keys = strings.filter(([name]) => name !== "kModelArchitecture").map(([, value]) => value);
    expect([...keys].sort()).toEqual([...ALL_MODEL_KEYS].sort());
    for (const [name, key] of Object.entries(MODEL_KEYS)) {
      expect(text).toContain(`inline constexpr const char* k${name[0].toUpperCase()}${name.slice(1)} = "${key}";`);
    }
    for (const section of MODEL_SECTIONS) {
      const block = new RegExp(`namespace ${section} \\{\\n([^}]*)\\}`).exec(text)?.[1] ?? "";
      const fields = [...block.matchAll(/const char\* (\w+) = "([^"]*)"/g)].map((m) => [m[1], m[2]]);
      expect(fields).toEqual(sectionFields(section).map((f) => [f, sectionKey(section, f)]));
    }
  });
});

describe("one owner: no source spells a key name or the format version", () => {
  // Names that look like keys but are files.
  const NOT_KEYS = new Set(["jsd.node", "jsd.png"]);
  const roots = ["lib", "native", "binding", "scripts"];
  const sourceFile = /(\.(ts|mjs|cpp|h|cmake)|CMakeLists\.txt)$/;

  function* sources(dir: string): Generator<string> {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) yield* sources(path);
      else if (sourceFile.test(entry.name)) yield path;
    }
  }

  const KEY_LIKE = /\b(?:jsd|general)\.[a-z0-9_]+(?:\.[a-z0-9_]+)*/g;

  // Comments may name keys (they explain); code may not. Block comments, then line comments
  // (`//` not after a ':' so that URLs stay), and `#` comments in CMake files.
  function withoutComments(text: string, cmake: boolean): string {
    if (cmake) return text.replace(/#.*$/gm, "");
    return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
  }

  it("every key comes from native/model/model_keys.json", () => {
    const found: string[] = [];
    for (const root of roots) {
      for (const path of sources(join(packageRoot, root))) {
        const lines = withoutComments(readFileSync(path, "utf8"), /\.cmake$|CMakeLists\.txt$/.test(path)).split("\n");
        lines.forEach((line, i) => {
          for (const m of line.matchAll(KEY_LIKE)) {
            if (!NOT_KEYS.has(m[0])) found.push(`${relative(packageRoot, path)}:${i + 1}: ${m[0]}`);
          }
          if (/\b(?:FORMAT_VERSION|kFormatVersion|kModelFormatVersion)\s*=\s*\d/.test(line)) found.push(`${relative(packageRoot, path)}:${i + 1}: a format version number`);
        });
      }
    }
    expect(found).toEqual([]);
  });

  it("the scan sees a key in code and skips comments", () => {
    const sample = 'const a = "https://x"; const b = "jsd.data_sha256"; // jsd.note\n/* general.name */ `${x} general.alignment`';
    expect(withoutComments(sample, false).match(KEY_LIKE)).toEqual(["jsd.data_sha256", "general.alignment"]);
    expect(withoutComments('set(K "jsd.unet.config") # jsd.vae.config', true).match(KEY_LIKE)).toEqual(["jsd.unet.config"]);
  });
});
