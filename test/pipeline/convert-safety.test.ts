// The safety checker as the converter's optional fourth component: rinna's layout (tiny-jsd with
// tiny-safety-checker laid over it) converts into one file with the checker's tensors and both
// sections of metadata; --no-safety-checker and folders without one leave it out; hostile
// variants of the new files are refused with coded errors and leave no output behind.
import { cp, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convert } from "../../lib/convert/index.js";
import { runCli } from "../../lib/cli/program.js";
import { openCheckpoint } from "../../lib/formats/checkpoint.js";
import { GgufFile } from "../../lib/formats/gguf-reader.js";
import { MODEL_KEYS, sectionFields, sectionKey } from "../../lib/formats/model-keys.js";
import type { RawTensor } from "../../lib/formats/safetensors.js";
import { tinyJsd, tinySafetyFolder } from "../helpers/models.js";
import { writeSafetensorsFile } from "../helpers/safetensors.js";

const CHECKER_BIN = "safety_checker/pytorch_model.bin";
let dir: string;
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "jsd-convert-safety-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A writable copy of the overlay folder. */
async function overlayCopy(): Promise<string> {
  const d = join(dir, `model${++n}`);
  await cp(tinySafetyFolder(), d, { recursive: true });
  return d;
}

async function checkerTensors(folder: string): Promise<RawTensor[]> {
  const reader = await openCheckpoint(join(folder, CHECKER_BIN));
  try {
    return await Promise.all(reader.names().map((name) => reader.read(name)));
  } finally {
    await reader.close();
  }
}

/** Replaces the checker's pickle by a .safetensors file of the same tensors, edited. */
async function rewriteChecker(folder: string, edit: (tensors: RawTensor[]) => RawTensor[]): Promise<void> {
  const tensors = edit(await checkerTensors(folder));
  await rm(join(folder, CHECKER_BIN));
  await writeSafetensorsFile(join(folder, "safety_checker/model.safetensors"), tensors);
}

async function editJson(folder: string, file: string, edit: (json: Record<string, unknown>) => void): Promise<void> {
  const path = join(folder, file);
  const json = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  edit(json);
  await writeFile(path, JSON.stringify(json));
}

async function expectRefused(folder: string, code: string, message: RegExp): Promise<void> {
  n++;
  const target = join(dir, `refused${n}.gguf`);
  const error = await convert(folder, target).then(
    () => undefined,
    (e: unknown) => e as { code?: string; message: string },
  );
  expect(error, "expected the conversion to fail").toBeDefined();
  expect({ code: error!.code, message: error!.message }).toMatchObject({ code, message: expect.stringMatching(message) });
  // Nothing is left behind: no output, no temporary file.
  expect((await readdir(dir)).filter((f) => f.startsWith(`refused${n}.gguf`))).toEqual([]);
}

async function fileSummary(path: string) {
  const file = await GgufFile.open(path);
  try {
    const tensors = new Map<string, { ne: number[]; type: string; data: Uint8Array }>();
    for (const t of file.tensors) tensors.set(t.name, { ne: t.ne, type: t.typeName, data: await file.readTensor(t.name) });
    return { tensors, names: file.tensors.map((t) => t.name), metadata: file.metadata, sha: file.getString(MODEL_KEYS.dataSha256) };
  } finally {
    await file.close();
  }
}

describe("a folder with rinna's safety checker", () => {
  it("converts into one file: the checker's tensors after the VAE's, both sections of metadata", async () => {
    const out = join(dir, "overlay-f32.gguf");
    const result = await convert(tinySafetyFolder(), out, { type: "f32", vaeType: "f32" });
    expect(result.types).toEqual({ text_encoder: "f32", unet: "f32", vae: "f32", safety_checker: "f32" });
    const file = await fileSummary(out);
    const checker = file.names.filter((name) => name.startsWith("sc."));
    // 45 state-dict entries less the position_ids buffer.
    expect(checker).toHaveLength(44);
    expect(file.names.slice(-checker.length)).toEqual(checker);
    expect(checker).toContain("sc.pre_layrnorm.weight");
    expect(checker).toContain("sc.encoder.layers.1.self_attn.q_proj.weight");

    // Every tensor's values are the checkpoint's (f32 throughout), under the documented names.
    const source = await checkerTensors(tinySafetyFolder());
    for (const t of source) {
      if (t.name.endsWith("position_ids")) continue;
      const internal = `sc.${t.name.replace(/^vision_model\.(vision_model\.)?/, "")}`;
      const stored = file.tensors.get(internal);
      expect(stored, internal).toBeDefined();
      expect(stored!.type).toBe("f32");
      expect(Buffer.compare(stored!.data, t.data), internal).toBe(0);
    }
    expect(file.tensors.get("sc.concept_embeds")!.ne).toEqual([16, 17]);
    expect(file.tensors.get("sc.special_care_embeds_weights")!.ne).toEqual([3]);

    const value = (section: "safety_checker" | "feature_extractor", field: string) => file.metadata.get(sectionKey(section, field))?.value;
    expect(value("safety_checker", "hidden_size")).toBe(32);
    expect(value("safety_checker", "num_hidden_layers")).toBe(2);
    expect(value("safety_checker", "patch_size")).toBe(14);
    expect(value("safety_checker", "projection_dim")).toBe(16);
    expect(value("safety_checker", "hidden_act")).toBe("quick_gelu");
    expect(value("feature_extractor", "size")).toBe(224);
    expect(value("feature_extractor", "resample")).toBe(3);
    expect(value("feature_extractor", "image_mean")).toEqual([...new Float32Array([0.48145466, 0.4578275, 0.40821073])]);
    expect(JSON.parse(value("feature_extractor", "config") as string).feature_extractor_type).toBe("CLIPFeatureExtractor");
    expect(file.metadata.get(MODEL_KEYS.embeddings)?.value).toContain("sc.embeddings.position_embedding.weight");
  });

  it("quantizes the checker's matrices like the text encoder's; tables, norms and the patch convolution stay wide", async () => {
    const out = join(dir, "overlay-q8.gguf");
    await convert(tinySafetyFolder(), out, { type: "f16", textEncoderType: "q8_0" });
    const { tensors } = await fileSummary(out);
    expect(tensors.get("sc.encoder.layers.0.mlp.fc1.weight")!.type).toBe("q8_0");
    expect(tensors.get("sc.visual_projection.weight")!.type).toBe("q8_0");
    expect(tensors.get("te.encoder.layers.0.mlp.fc1.weight")!.type).toBe("q8_0");
    expect(tensors.get("unet.conv_out.weight")!.type).toBe("f16");
    // 3·14·14 = 588 values per row: no whole q8_0 block, so f16 (the type rule).
    expect(tensors.get("sc.embeddings.patch_embedding.weight")!).toMatchObject({ type: "f16", ne: [14, 14, 3, 32] });
    for (const name of ["sc.concept_embeds", "sc.special_care_embeds", "sc.embeddings.position_embedding.weight", "sc.embeddings.class_embedding", "sc.post_layernorm.weight"]) {
      expect(tensors.get(name)!.type, name).toBe("f32");
    }
  });

  it("takes its own type with safetyCheckerType (jsd convert --safety-checker-type)", async () => {
    const out = join(dir, "overlay-checker-f16.gguf");
    const result = await convert(tinySafetyFolder(), out, { type: "q8_0", safetyCheckerType: "f16" });
    expect(result.types).toMatchObject({ text_encoder: "q8_0", unet: "q8_0", safety_checker: "f16" });
    const { tensors } = await fileSummary(out);
    expect(tensors.get("sc.encoder.layers.0.mlp.fc1.weight")!.type).toBe("f16");
    expect(tensors.get("te.encoder.layers.0.mlp.fc1.weight")!.type).toBe("q8_0");
    await expect(convert(tinySafetyFolder(), join(dir, "bad-type.gguf"), { safetyCheckerType: "q3" })).rejects.toMatchObject({ code: "JSD_INVALID_ARGUMENT" });
  });

  it("gives the same tensors from a .safetensors checker with transformers 4's vision_model.vision_model. names", async () => {
    const folder = await overlayCopy();
    await rewriteChecker(folder, (tensors) => tensors.map((t) => ({ ...t, name: t.name.replace(/^vision_model\.(?!vision_model\.)/, "vision_model.vision_model.") })));
    const [a, b] = [join(dir, "pickle.gguf"), join(dir, "safetensors.gguf")];
    await convert(tinySafetyFolder(), a);
    await convert(folder, b);
    expect((await fileSummary(b)).sha).toBe((await fileSummary(a)).sha);
  });

  it("leaves the checker out with safetyChecker: false and with `jsd convert --no-safety-checker`", async () => {
    const out = join(dir, "no-checker.gguf");
    const result = await convert(tinySafetyFolder(), out, { safetyChecker: false });
    expect(Object.keys(result.types)).toEqual(["text_encoder", "unet", "vae"]);
    const file = await fileSummary(out);
    expect(file.names.filter((name) => name.startsWith("sc."))).toEqual([]);
    for (const section of ["safety_checker", "feature_extractor"] as const) {
      for (const field of sectionFields(section)) expect(file.metadata.has(sectionKey(section, field))).toBe(false);
    }
    // The networks' tensors are those of the folder without a checker.
    const plain = join(dir, "plain.gguf");
    await convert(tinyJsd, plain);
    expect(file.sha).toBe((await fileSummary(plain)).sha);

    const sink = { stdout: "", stderr: "" };
    const io = { stdout: { write: (s: string) => (sink.stdout += s) }, stderr: { write: (s: string) => (sink.stderr += s) } };
    const cliOut = join(dir, "cli-no-checker.gguf");
    expect(await runCli(["node", "jsd", "convert", tinySafetyFolder(), "-o", cliOut, "--no-safety-checker", "-q"], io)).toBe(0);
    expect((await fileSummary(cliOut)).sha).toBe(file.sha);
    expect(await runCli(["node", "jsd", "info", cliOut], io)).toBe(0);
    expect(sink.stdout).toMatch(/safety: +no safety checker/);
  });

  it("`jsd info` shows the checker", async () => {
    const out = join(dir, "info.gguf");
    await convert(tinySafetyFolder(), out);
    const sink = { stdout: "", stderr: "" };
    const io = { stdout: { write: (s: string) => (sink.stdout += s) }, stderr: { write: (s: string) => (sink.stderr += s) } };
    expect(await runCli(["node", "jsd", "info", out], io)).toBe(0);
    expect(sink.stdout).toMatch(/safety: +a safety checker/);
    expect(sink.stdout).toMatch(/safety checker +44 +45,140 /);
    expect(sink.stdout).toMatch(/feature_extractor:\n(.*\n)*? +crop_size +224/);
  });
});

describe("hostile safety checkers are refused", () => {
  it("a truncated pickle", async () => {
    const folder = await overlayCopy();
    await truncate(join(folder, CHECKER_BIN), 150_000);
    await expectRefused(folder, "JSD_BAD_FILE", /pytorch_model\.bin/);
  });

  it("a concept table of the wrong shape", async () => {
    const folder = await overlayCopy();
    await rewriteChecker(folder, (tensors) => tensors.map((t) => (t.name === "concept_embeds" ? { ...t, shape: [16, 17] } : t)));
    await expectRefused(folder, "JSD_BAD_MODEL", /'concept_embeds' has shape \[16,17\] but .* implies \[17,16\]/);
  });

  it("a vision tower wider than its config", async () => {
    const folder = await overlayCopy();
    await editJson(folder, "safety_checker/config.json", (json) => {
      (json.vision_config as Record<string, unknown>).hidden_size = 64;
    });
    await expectRefused(folder, "JSD_BAD_MODEL", /safety_checker\/model|pytorch_model\.bin: tensor .* has shape/);
  });

  it("missing thresholds", async () => {
    const folder = await overlayCopy();
    await rewriteChecker(folder, (tensors) => tensors.filter((t) => t.name !== "concept_embeds_weights"));
    await expectRefused(folder, "JSD_BAD_MODEL", /lacks 1 tensor\(s\) .*'concept_embeds_weights'/);
  });

  it("a tensor the checker does not have", async () => {
    const folder = await overlayCopy();
    await rewriteChecker(folder, (tensors) => [...tensors, { ...tensors[1], name: "extra_table" }]);
    await expectRefused(folder, "JSD_BAD_MODEL", /does not describe: 'extra_table'/);
  });

  it("a feature extractor this package cannot run exactly", async () => {
    const resample = await overlayCopy();
    await editJson(resample, "feature_extractor/preprocessor_config.json", (json) => (json.resample = 2));
    await expectRefused(resample, "JSD_BAD_MODEL", /resample is 2: only 3 \(PIL.s BICUBIC\)/);
    const crop = await overlayCopy();
    await editJson(crop, "feature_extractor/preprocessor_config.json", (json) => (json.crop_size = 192));
    await expectRefused(crop, "JSD_BAD_MODEL", /crop_size 192 does not match .*image_size 224/);
    const mean = await overlayCopy();
    await editJson(mean, "feature_extractor/preprocessor_config.json", (json) => (json.image_mean = [0.5, 0.5]));
    await expectRefused(mean, "JSD_BAD_MODEL", /'image_mean' must be a list of 3 numbers/);
  });

  it("a checker the model index names but the folder lacks, or of a class this package does not know", async () => {
    const noExtractor = await overlayCopy();
    await rm(join(noExtractor, "feature_extractor"), { recursive: true });
    await expectRefused(noExtractor, "JSD_NOT_FOUND", /feature extractor config \(--no-safety-checker converts the model without it\) not found/);
    const noWeights = await overlayCopy();
    await rm(join(noWeights, CHECKER_BIN));
    await expectRefused(noWeights, "JSD_NOT_FOUND", /no safety_checker weights/);
    const otherClass = await overlayCopy();
    await editJson(otherClass, "model_index.json", (json) => (json.safety_checker = ["somewhere", "SomeOtherChecker"]));
    await expectRefused(otherClass, "JSD_BAD_MODEL", /safety_checker is .*SomeOtherChecker.*StableDiffusionSafetyChecker/);
    const gelu = await overlayCopy();
    await editJson(gelu, "safety_checker/config.json", (json) => ((json.vision_config as Record<string, unknown>).hidden_act = "gelu"));
    await expectRefused(gelu, "JSD_BAD_MODEL", /hidden_act 'gelu' is not supported/);
    // ...and each converts without the checker when asked to leave it out.
    await convert(noExtractor, join(dir, "left-out.gguf"), { safetyChecker: false });
  });
});
