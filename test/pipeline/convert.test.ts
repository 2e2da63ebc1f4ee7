// diffusers folder -> JSD model file: tensor identity across source formats, the type rule,
// the metadata of docs/model-format.md, overwrite/cleanup behaviour, typed errors for malformed
// inputs, and the `jsd` CLI.
// Over 400 lines, and one job: one subject's cases, each short.
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertTuning } from "../../lib/convert/convert.js";
import { convert } from "../../lib/convert/index.js";
import { runCli } from "../../lib/cli/program.js";
import { openCheckpoint } from "../../lib/formats/checkpoint.js";
import { GgufFile } from "../../lib/formats/gguf-reader.js";
import { MODEL_KEYS } from "../../lib/formats/model-keys.js";
import { readSafetensors, toFloat32, toInt32, type RawTensor } from "../../lib/formats/safetensors.js";
import { native } from "../../lib/native/addon.js";
import { writeSafetensorsFile } from "../helpers/safetensors.js";

const TINY = "test/fixtures/tiny-jsd";
const TINY_BIN = "test/fixtures/tiny-jsd-bin";
const COMPONENT_FILES = {
  text_encoder: "text_encoder/model.safetensors",
  unet: "unet/diffusion_pytorch_model.safetensors",
  vae: "vae/diffusion_pytorch_model.safetensors",
} as const;

let dir: string;
let n = 0;
/** A fresh empty folder for one test's output. */
async function outDir(): Promise<string> {
  const d = join(dir, `out${++n}`);
  await mkdir(d);
  return d;
}

/** A writable copy of tiny-jsd. */
async function fixtureCopy(): Promise<string> {
  const d = join(dir, `model${++n}`);
  await cp(TINY, d, { recursive: true });
  return d;
}

/** Rewrites one weight file of a folder through `edit`. */
async function editWeights(folder: string, component: keyof typeof COMPONENT_FILES, edit: (tensors: RawTensor[]) => RawTensor[], fileName?: string): Promise<void> {
  const path = join(folder, COMPONENT_FILES[component]);
  const { tensors } = await readSafetensors(path);
  const edited = edit([...tensors.values()]);
  if (fileName) await rm(path);
  await writeSafetensorsFile(fileName ? join(folder, component, fileName) : path, edited);
}

async function expectCode(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  let error: unknown;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  expect(error, "expected a failure").toBeDefined();
  expect({ code: (error as { code?: string }).code, message: (error as Error).message }).toMatchObject({ code, message: expect.stringMatching(message) });
}

async function tensorsOf(path: string): Promise<Map<string, { ne: number[]; type: string; data: Uint8Array }>> {
  const file = await GgufFile.open(path);
  try {
    const out = new Map<string, { ne: number[]; type: string; data: Uint8Array }>();
    for (const t of file.tensors) out.set(t.name, { ne: t.ne, type: t.typeName, data: await file.readTensor(t.name) });
    return out;
  } finally {
    await file.close();
  }
}

// The spec's name mapping, written out independently of lib/convert/names.ts: internal -> 2022 name.
function sourceNameOf(internal: string): { component: keyof typeof COMPONENT_FILES; name: string } {
  if (internal.startsWith("te.")) return { component: "text_encoder", name: `text_model.${internal.slice(3)}` };
  if (internal.startsWith("unet.")) return { component: "unet", name: internal.slice(5).replace(/\.blocks\./g, ".transformer_blocks.") };
  const old: Record<string, string> = { to_q: "query", to_k: "key", to_v: "value", "to_out.0": "proj_attn" };
  return {
    component: "vae",
    name: internal.slice(4).replace(/^((?:encoder|decoder)\.mid_block\.attentions\.0)\.(to_q|to_k|to_v|to_out\.0)\./, (_m, b: string, p: string) => `${b}.${old[p]}.`),
  };
}

const isProjection = (name: string) => /\.proj_(in|out)\.weight$/.test(name) || /mid_block\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$/.test(name);

/** The type rule of docs/model-format.md, written out for the test. */
function expectedLayout(internal: string, shape: number[], requested: string, block: number): { type: string; ne: number[] } {
  if (shape.length === 1 || internal === "te.embeddings.position_embedding.weight") return { type: "f32", ne: [...shape].reverse() };
  const torch = isProjection(internal) ? shape.slice(0, 2) : shape;
  const ne = [...torch].reverse();
  if (block === 1) return { type: requested, ne };
  const flat = ne.slice(0, -1).reduce((a, b) => a * b, 1);
  if (flat % block === 0) return { type: requested, ne: [flat, ne[ne.length - 1]] };
  // k-quants whose rows are not whole 256-blocks fall back to a 32-block type (docs/model-format.md)
  const fallback: Record<string, string> = { q4_K: "q5_0", q5_K: "q5_1", q6_K: "q8_0" };
  if (fallback[requested] && flat % 32 === 0) return { type: fallback[requested], ne: [flat, ne[ne.length - 1]] };
  return { type: "f16", ne };
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function dequantize(type: string, data: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (type === "f32") return new Float32Array(data.slice().buffer);
  if (type === "f16") {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
    return out;
  }
  if (type === "q8_0") {
    for (let b = 0; b < count / 32; b++) {
      const d = halfToFloat(view.getUint16(b * 34, true));
      for (let j = 0; j < 32; j++) out[b * 32 + j] = d * view.getInt8(b * 34 + 2 + j);
    }
    return out;
  }
  throw new Error(`no dequantizer for ${type}`);
}

let binSupported = false;
let sources: Record<keyof typeof COMPONENT_FILES, Map<string, RawTensor>>;
let f32Model: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "jsd-convert-"));
  try {
    const reader = await openCheckpoint(join(TINY_BIN, "unet/diffusion_pytorch_model.bin"));
    await reader.close();
    binSupported = true;
  } catch (error) {
    console.warn(`skipping the .bin conversion test: openCheckpoint cannot read .bin files yet (${(error as Error).message})`);
  }
  sources = {
    text_encoder: (await readSafetensors(join(TINY, COMPONENT_FILES.text_encoder))).tensors,
    unet: (await readSafetensors(join(TINY, COMPONENT_FILES.unet))).tensors,
    vae: (await readSafetensors(join(TINY, COMPONENT_FILES.vae))).tensors,
  };
  f32Model = join(await outDir(), "tiny-f32.gguf");
  await convert(TINY, f32Model, { type: "f32", vaeType: "f32" });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("convert", () => {
  it("stores every weight of tiny-jsd, f32 data byte-identical to the checkpoint", async () => {
    const tensors = await tensorsOf(f32Model);
    // 37 + 684 + 244 checkpoint tensors, less the position_ids buffer
    expect(tensors.size).toBe(964);
    let checked = 0;
    for (const [name, t] of tensors) {
      const { component, name: src } = sourceNameOf(name);
      const raw = sources[component].get(src);
      expect(raw, `${name} <- ${src}`).toBeDefined();
      expect(t.type).toBe("f32");
      expect(t.ne).toEqual(expectedLayout(name, raw!.shape, "f32", 1).ne);
      expect(Buffer.from(t.data).equals(Buffer.from(raw!.data)), name).toBe(true);
      checked++;
    }
    expect(checked).toBe(964);
    expect([...tensors.keys()].some((k) => k.includes("position_ids"))).toBe(false);
    expect(Math.max(...[...tensors.keys()].map((k) => Buffer.byteLength(k)))).toBeLessThan(64);
  });

  it("gives identical tensors from safetensors and from PyTorch .bin files", async (ctx) => {
    if (!binSupported) ctx.skip();
    const out = join(await outDir(), "tiny-bin-f32.gguf");
    await convert(TINY_BIN, out, { type: "f32", vaeType: "f32" });
    const a = await tensorsOf(f32Model);
    const b = await tensorsOf(out);
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [name, t] of a) {
      const u = b.get(name)!;
      expect([u.type, u.ne]).toEqual([t.type, t.ne]);
      expect(Buffer.from(u.data).equals(Buffer.from(t.data)), name).toBe(true);
    }
    const fa = await GgufFile.open(f32Model);
    const fb = await GgufFile.open(out);
    expect(fb.getString(MODEL_KEYS.dataSha256)).toBe(fa.getString(MODEL_KEYS.dataSha256));
    expect(JSON.parse(fb.getString(MODEL_KEYS.source)).weights.unet).toEqual({ file: "unet/diffusion_pytorch_model.bin", format: "pytorch" });
    await fa.close();
    await fb.close();
  });

  for (const [type, block] of [
    ["q8_0", 32],
    ["q4_K", 256],
  ] as const) {
    it(`follows the type rule at ${type}`, async () => {
      const out = join(await outDir(), `tiny-${type}.gguf`);
      const result = await convert(TINY, out, { type, vaeType: type });
      const tensors = await tensorsOf(out);
      const counts: Record<string, number> = {};
      for (const [name, t] of tensors) {
        const { component, name: src } = sourceNameOf(name);
        const raw = sources[component].get(src)!;
        expect({ name, type: t.type, ne: t.ne }).toEqual({ name, ...expectedLayout(name, raw.shape, type, block) });
        counts[t.type] = (counts[t.type] ?? 0) + 1;
        if (["f32", "f16", "q8_0"].includes(t.type)) {
          // the stored values are the checkpoint's (in ggml's row order)
          const want = toFloat32(raw);
          const got = dequantize(t.type, t.data, want.length);
          let amax = 0;
          let err = 0;
          for (let i = 0; i < want.length; i++) {
            amax = Math.max(amax, Math.abs(want[i]));
            err = Math.max(err, Math.abs(want[i] - got[i]));
          }
          expect(err, name).toBeLessThanOrEqual(t.type === "f32" ? 0 : t.type === "f16" ? amax * 1e-3 : amax / 127);
        }
      }
      expect(result.tensorTypes).toEqual(counts);
      expect(counts[type]).toBeGreaterThan(0);
      expect(counts.f16).toBeGreaterThan(0); // conv_in (36-wide rows) and others fall back
      if (type === "q8_0") {
        expect(tensors.get("unet.conv_in.weight")).toMatchObject({ type: "f16", ne: [3, 3, 4, 32] });
        expect(tensors.get("unet.down_blocks.0.resnets.0.conv1.weight")).toMatchObject({ type: "q8_0", ne: [288, 32] });
        expect(tensors.get("unet.down_blocks.0.attentions.0.proj_in.weight")).toMatchObject({ type: "q8_0", ne: [32, 32] });
        expect(tensors.get("vae.decoder.mid_block.attentions.0.to_out.0.weight")).toMatchObject({ type: "q8_0", ne: [64, 64] });
      }
    });
  }

  it("gives the same file whatever the chunk size (tensors split into many chunks)", async () => {
    const d = await outDir();
    const reference = await convert(TINY, join(d, "one-chunk.gguf"), { type: "q8_0", vaeType: "f32" });
    const saved = convertTuning.chunkValues;
    try {
      convertTuning.chunkValues = 1000; // e.g. conv rows of 288 values: 3 rows per chunk
      const split = await convert(TINY, join(d, "small-chunks.gguf"), { type: "q8_0", vaeType: "f32" });
      expect(split.dataSha256).toBe(reference.dataSha256);
      expect(split.size).toBe(reference.size);
      if (binSupported) {
        const bin = await convert(TINY_BIN, join(d, "small-chunks-bin.gguf"), { type: "q8_0", vaeType: "f32" });
        expect(bin.dataSha256).toBe(reference.dataSha256);
      }
    } finally {
      convertTuning.chunkValues = saved;
    }
  });

  it("uses --vae-type and --text-encoder-type independently (VAE default f16)", async () => {
    const out = join(await outDir(), "mixed.gguf");
    const result = await convert(TINY, out, { type: "q8_0", textEncoderType: "f32" });
    expect(result.types).toEqual({ text_encoder: "f32", unet: "q8_0", vae: "f16" });
    const tensors = await tensorsOf(out);
    expect(tensors.get("te.encoder.layers.0.mlp.fc1.weight")!.type).toBe("f32");
    expect(tensors.get("unet.down_blocks.0.attentions.0.blocks.0.attn1.to_q.weight")!.type).toBe("q8_0");
    expect(tensors.get("vae.decoder.up_blocks.0.resnets.0.conv1.weight")).toMatchObject({ type: "f16", ne: [3, 3, 64, 64] });
    const file = await GgufFile.open(out);
    expect(file.getString(MODEL_KEYS.fileType)).toBe("q8_0");
    await file.close();
  });

  it("writes the metadata of docs/model-format.md", async () => {
    const file = await GgufFile.open(f32Model);
    try {
      const spec: Record<string, string> = {
        "general.architecture": "string",
        "general.name": "string",
        "general.alignment": "u32",
        "jsd.format_version": "u32",
        "jsd.converter": "string",
        "jsd.source": "string",
        "jsd.file_type": "string",
        "jsd.model_index": "string",
        "jsd.data_sha256": "string",
        "jsd.embeddings": "array:string",
        "jsd.tokenizer.sentencepiece": "array:u8",
        "jsd.tokenizer.pad_id": "i32",
        "jsd.tokenizer.eos_id": "i32",
        "jsd.tokenizer.unk_id": "i32",
        "jsd.tokenizer.do_lower_case": "bool",
        "jsd.tokenizer.model_max_length": "u32",
        "jsd.tokenizer.config": "string",
        "jsd.text_encoder.config": "string",
        "jsd.text_encoder.layer_norm_eps": "f32",
        "jsd.text_encoder.hidden_act": "string",
        "jsd.unet.config": "string",
        "jsd.unet.attention_head_dim": "array:u32",
        "jsd.unet.block_out_channels": "array:u32",
        "jsd.unet.down_block_types": "array:string",
        "jsd.unet.up_block_types": "array:string",
        "jsd.unet.norm_eps": "f32",
        "jsd.unet.flip_sin_to_cos": "bool",
        "jsd.vae.config": "string",
        "jsd.vae.block_out_channels": "array:u32",
        "jsd.vae.scaling_factor": "f32",
        "jsd.scheduler.config": "string",
      };
      for (const k of ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings"]) spec[`jsd.text_encoder.${k}`] = "u32";
      for (const k of ["in_channels", "out_channels", "layers_per_block", "cross_attention_dim", "norm_num_groups", "sample_size", "freq_shift"]) spec[`jsd.unet.${k}`] = "u32";
      for (const k of ["in_channels", "out_channels", "latent_channels", "layers_per_block", "norm_num_groups", "sample_size"]) spec[`jsd.vae.${k}`] = "u32";
      const types = Object.fromEntries([...file.metadata].map(([k, v]) => [k, v.type === "array" ? `array:${v.itemType}` : v.type]));
      expect(types).toEqual(spec);

      const text = (p: string) => readFile(join(TINY, p), "utf8");
      expect(file.getString("general.architecture")).toBe("jsd");
      expect(file.getString("general.name")).toBe("tiny-jsd");
      expect(file.getNumber("jsd.format_version")).toBe(2);
      expect(file.metadata.get("jsd.embeddings")?.value).toEqual(["te.embeddings.token_embedding.weight", "te.embeddings.position_embedding.weight"]);
      expect(file.getString("jsd.converter")).toMatch(/^japanese-stable-diffusion@\d+\.\d+\.\d+/);
      expect(file.getString("jsd.file_type")).toBe("f32");
      expect(JSON.parse(file.getString("jsd.source"))).toMatchObject({ weights: { unet: { file: COMPONENT_FILES.unet, format: "safetensors" } } });
      expect(file.getString("jsd.model_index")).toBe(await text("model_index.json"));
      expect(file.getString("jsd.unet.config")).toBe(await text("unet/config.json"));
      expect(file.getString("jsd.vae.config")).toBe(await text("vae/config.json"));
      expect(file.getString("jsd.text_encoder.config")).toBe(await text("text_encoder/config.json"));
      expect(file.getString("jsd.scheduler.config")).toBe(await text("scheduler/scheduler_config.json"));
      expect(file.getString("jsd.tokenizer.config")).toBe(await text("tokenizer/tokenizer_config.json"));
      expect(Buffer.from(file.getBytes("jsd.tokenizer.sentencepiece")).equals(await readFile(join(TINY, "tokenizer/spiece.model")))).toBe(true);
      expect([file.getNumber("jsd.tokenizer.pad_id"), file.getNumber("jsd.tokenizer.eos_id"), file.getNumber("jsd.tokenizer.unk_id")]).toEqual([0, 1, 2]);
      expect(file.getBool("jsd.tokenizer.do_lower_case")).toBe(true);
      expect(file.getNumber("jsd.tokenizer.model_max_length")).toBe(77);
      expect(file.getNumber("jsd.text_encoder.vocab_size")).toBe(8000);
      expect(file.getString("jsd.text_encoder.hidden_act")).toBe("quick_gelu");
      expect(file.getArray("jsd.unet.attention_head_dim")).toEqual([8, 8, 8, 8]);
      expect(file.getArray("jsd.unet.block_out_channels")).toEqual([32, 32, 64, 64]);
      expect(file.getArray("jsd.unet.up_block_types")).toEqual(["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]);
      expect(file.getBool("jsd.unet.flip_sin_to_cos")).toBe(true);
      expect(file.getNumber("jsd.vae.sample_size")).toBe(64);
      expect(file.getNumber("jsd.vae.scaling_factor")).toBeCloseTo(0.18215, 7);
      expect(file.getString("jsd.data_sha256")).toMatch(/^[0-9a-f]{64}$/);
      expect(await file.computeDataSha256()).toBe(file.getString("jsd.data_sha256"));
    } finally {
      await file.close();
    }
  });

  it("reads current diffusers names (to_q/.../to_out.0 in the VAE, Linear proj_in/proj_out)", async () => {
    const folder = await fixtureCopy();
    const renames: Record<string, string> = { query: "to_q", key: "to_k", value: "to_v", proj_attn: "to_out.0" };
    await editWeights(folder, "vae", (ts) =>
      ts.map((t) => ({ ...t, name: t.name.replace(/(mid_block\.attentions\.0)\.(query|key|value|proj_attn)\./, (_m, b: string, p: string) => `${b}.${renames[p]}.`) })),
    );
    await editWeights(folder, "unet", (ts) => ts.map((t) => (/proj_(in|out)\.weight$/.test(t.name) ? { ...t, shape: t.shape.slice(0, 2) } : t)));
    await editWeights(folder, "text_encoder", (ts) => ts.filter((t) => !t.name.endsWith("position_ids"))); // newer transformers do not save it
    const out = join(await outDir(), "current-names.gguf");
    await convert(folder, out, { type: "f32", vaeType: "f32" });
    const a = await tensorsOf(f32Model);
    const b = await tensorsOf(out);
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [name, t] of a) expect(Buffer.from(b.get(name)!.data).equals(Buffer.from(t.data)), name).toBe(true);
  });

  it("reads F16 and BF16 weights (fp16 variant file) exactly", async () => {
    const folder = await fixtureCopy();
    const as = async (ts: RawTensor[], dtype: "F16" | "BF16") =>
      Promise.all(
        ts.map(async (t) => (t.dtype === "F32" ? { ...t, dtype, data: await native().convertTensor(toFloat32(t), 1, dtype.toLowerCase()) } : t)),
      );
    const unet = await as([...sources.unet.values()], "F16");
    const vae = await as([...sources.vae.values()], "BF16");
    await editWeights(folder, "unet", () => unet, "diffusion_pytorch_model.fp16.safetensors");
    await editWeights(folder, "vae", () => vae);
    const out = join(await outDir(), "half.gguf");
    await convert(folder, out, { type: "f16", vaeType: "bf16" });
    const tensors = await tensorsOf(out);
    const file = await GgufFile.open(out);
    expect(JSON.parse(file.getString(MODEL_KEYS.source)).weights.unet.file).toBe("unet/diffusion_pytorch_model.fp16.safetensors");
    await file.close();
    for (const [component, list, half] of [
      ["unet", unet, "f16"],
      ["vae", vae, "bf16"],
    ] as const) {
      for (const src of list) {
        if (src.shape.length === 1) continue; // stored as f32
        const internal = [...tensors.keys()].find((k) => sourceNameOf(k).component === component && sourceNameOf(k).name === src.name)!;
        const t = tensors.get(internal)!;
        expect(t.type).toBe(half);
        expect(Buffer.from(t.data).equals(Buffer.from(src.data)), src.name).toBe(true);
      }
    }
  });

  it("runs in the native engine and reproduces the reference outputs (f32)", async (ctx) => {
    if (typeof (native() as unknown as { loadModel?: unknown }).loadModel !== "function") ctx.skip();
    const { loadModel } = await import("../../lib/model.js");
    const model = await loadModel(f32Model);
    try {
      const maxDiff = (a: Float32Array, b: Float32Array) => {
        expect(a.length).toBe(b.length);
        let d = 0;
        for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
        return d;
      };
      const te = (await readSafetensors("test/fixtures/reference/text_encoder/te_random_ids.safetensors")).tensors;
      const ids = te.get("input_ids")!;
      expect(maxDiff(await model.encodeText(toInt32(ids), ids.shape[0]), toFloat32(te.get("last_hidden_state")!))).toBeLessThan(1e-4);
      const u = (await readSafetensors("test/fixtures/reference/unet/unet_b1_8x8_t1.safetensors")).tensors;
      const noise = await model.predictNoise({
        latents: toFloat32(u.get("sample")!),
        shape: u.get("sample")!.shape as [number, number, number, number],
        timesteps: toFloat32(u.get("timestep")!),
        textStates: toFloat32(u.get("encoder_hidden_states")!),
      });
      expect(maxDiff(noise, toFloat32(u.get("out")!))).toBeLessThan(1e-3);
      const v = (await readSafetensors("test/fixtures/reference/vae_decode/vae_dec_b1_8x8.safetensors")).tensors;
      const image = await model.decodeLatents(toFloat32(v.get("z")!), v.get("z")!.shape as [number, number, number, number]);
      expect(maxDiff(image, toFloat32(v.get("image")!))).toBeLessThan(1e-3);
    } finally {
      await model.close();
    }
  });
});

describe("convert: output file handling", () => {
  it("refuses to overwrite unless forced", async () => {
    const d = await outDir();
    const out = join(d, "model.gguf");
    await writeFile(out, "keep me");
    await expectCode(convert(TINY, out), "JSD_EXISTS", /already exists/);
    expect(await readFile(out, "utf8")).toBe("keep me");
    await convert(TINY, out, { force: true });
    const file = await GgufFile.open(out);
    expect(file.getString(MODEL_KEYS.fileType)).toBe("f16");
    await file.close();
    expect(await readdir(d)).toEqual(["model.gguf"]);
  });

  it("leaves nothing behind when aborted", async () => {
    const d = await outDir();
    const controller = new AbortController();
    const seen: number[] = [];
    await expectCode(
      convert(TINY, join(d, "model.gguf"), {
        signal: controller.signal,
        onProgress: (p) => {
          seen.push(p.index);
          if (p.index === 20) controller.abort();
        },
      }),
      "JSD_ABORTED",
      /aborted/,
    );
    expect(seen.length).toBeGreaterThan(20);
    expect(seen.length).toBeLessThan(964);
    expect(await readdir(d)).toEqual([]);
    await expectCode(convert(TINY, join(d, "model.gguf"), { signal: AbortSignal.abort() }), "JSD_ABORTED", /aborted/);
    expect(await readdir(d)).toEqual([]);
  });

  it("leaves nothing behind when a step fails midway", async () => {
    const d = await outDir();
    let calls = 0;
    await expect(
      convert(TINY, join(d, "model.gguf"), {
        onProgress: (p) => {
          calls++;
          expect(p.total).toBe(964);
          if (p.index === 500) throw new Error("disk on fire");
        },
      }),
    ).rejects.toThrow("disk on fire");
    expect(calls).toBe(501);
    expect(await readdir(d)).toEqual([]);
  });

  it("leaves nothing behind when a weight file is truncated", async () => {
    const folder = await fixtureCopy();
    const unet = join(folder, COMPONENT_FILES.unet);
    await truncate(unet, Math.floor((await stat(unet)).size / 2));
    const d = await outDir();
    await expectCode(convert(folder, join(d, "model.gguf")), "JSD_BAD_FILE", /diffusion_pytorch_model\.safetensors.*truncated/);
    expect(await readdir(d)).toEqual([]);
  });

  it("reports progress for every tensor", async () => {
    const d = await outDir();
    const progress: Array<{ index: number; bytesWritten: number }> = [];
    const result = await convert(TINY, join(d, "m.gguf"), { type: "q8_0", onProgress: (p) => progress.push(p) });
    expect(progress.map((p) => p.index)).toEqual([...Array(964).keys()]);
    expect(progress[963].bytesWritten).toBe(result.size);
    expect((await stat(join(d, "m.gguf"))).size).toBe(result.size);
  });
});

describe("convert: malformed inputs give typed errors", () => {
  async function failsWith(prepare: (folder: string) => Promise<void>, code: string, message: RegExp): Promise<void> {
    const folder = await fixtureCopy();
    await prepare(folder);
    const d = await outDir();
    await expectCode(convert(folder, join(d, "model.gguf")), code, message);
    expect(await readdir(d)).toEqual([]);
  }

  it("folder without model_index.json", () => failsWith((f) => rm(join(f, "model_index.json")), "JSD_NOT_FOUND", /model_index\.json/));
  it("input folder that does not exist", () => expectCode(convert(join(dir, "nope"), join(dir, "x.gguf")), "JSD_NOT_FOUND", /input folder not found/));
  it("missing unet weights", () => failsWith((f) => rm(join(f, COMPONENT_FILES.unet)), "JSD_NOT_FOUND", /no unet weights/));
  it("missing spiece.model", () => failsWith((f) => rm(join(f, "tokenizer/spiece.model")), "JSD_NOT_FOUND", /spiece\.model/));
  it("missing config", () => failsWith((f) => rm(join(f, "vae/config.json")), "JSD_NOT_FOUND", /vae\/config\.json/));
  it("a broken spiece.model", () => failsWith((f) => writeFile(join(f, "tokenizer/spiece.model"), "not a model"), "JSD_BAD_TOKENIZER", /./));
  it("a model index of another pipeline", () =>
    failsWith(
      async (f) => {
        const index = JSON.parse(await readFile(join(f, "model_index.json"), "utf8"));
        index.tokenizer = ["transformers", "CLIPTokenizer"];
        await writeFile(join(f, "model_index.json"), JSON.stringify(index));
      },
      "JSD_BAD_MODEL",
      /tokenizer is transformers CLIPTokenizer/,
    ));

  it("safetensors with a truncated header", () =>
    failsWith(async (f) => {
      const path = join(f, COMPONENT_FILES.vae);
      const bytes = await readFile(path);
      await writeFile(path, bytes.subarray(0, 8 + Number(bytes.readBigUInt64LE(0)) / 2));
    }, "JSD_BAD_FILE", /vae\/diffusion_pytorch_model\.safetensors.*header/));

  it("safetensors with offsets past the end", () =>
    failsWith(async (f) => {
      const path = join(f, COMPONENT_FILES.text_encoder);
      const bytes = await readFile(path);
      const headerLength = Number(bytes.readBigUInt64LE(0));
      const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString());
      const dataLength = bytes.length - 8 - headerLength;
      header["text_model.final_layer_norm.bias"].data_offsets = [dataLength + 1000, dataLength + 1000 + 128];
      let json = JSON.stringify(header);
      json += " ".repeat((8 - (json.length % 8)) % 8);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      await writeFile(path, Buffer.concat([len, Buffer.from(json), bytes.subarray(8 + headerLength)]));
    }, "JSD_BAD_FILE", /final_layer_norm\.bias.*past the end/));

  it("a weight stored as I32", () =>
    failsWith(
      (f) => editWeights(f, "vae", (ts) => ts.map((t) => (t.name === "decoder.conv_in.bias" ? { ...t, dtype: "I32" } : t))),
      "JSD_BAD_MODEL",
      /decoder\.conv_in\.bias' has dtype I32/,
    ));

  it("a tensor whose shape does not match the config", () =>
    failsWith(
      (f) => editWeights(f, "unet", (ts) => ts.map((t) => (t.name === "conv_in.weight" ? { ...t, shape: [32, 36] } : t))),
      "JSD_BAD_MODEL",
      /'conv_in\.weight' has shape \[32,36\] but unet\/config\.json implies \[32,4,3,3\]/,
    ));

  it("a config that does not match the weights", () =>
    failsWith(
      async (f) => {
        const path = join(f, "text_encoder/config.json");
        const cfg = JSON.parse(await readFile(path, "utf8"));
        cfg.intermediate_size = 128;
        await writeFile(path, JSON.stringify(cfg));
      },
      "JSD_BAD_MODEL",
      /mlp\.fc1\.(weight|bias)' has shape \[64(,32)?\] but text_encoder\/config\.json implies \[128(,32)?\]/,
    ));

  it("a missing tensor", () =>
    failsWith((f) => editWeights(f, "vae", (ts) => ts.filter((t) => t.name !== "post_quant_conv.weight")), "JSD_BAD_MODEL", /lacks 1 tensor.*post_quant_conv\.weight/));

  it("an unknown tensor", () =>
    failsWith(
      (f) => editWeights(f, "unet", (ts) => [...ts, { name: "add_embedding.linear_1.weight", dtype: "F32", shape: [1], data: new Uint8Array(4) }]),
      "JSD_BAD_MODEL",
      /does not describe: 'add_embedding\.linear_1\.weight'/,
    ));

  it("an output folder that does not exist", () => expectCode(convert(TINY, join(dir, "no/such/x.gguf")), "JSD_NOT_FOUND", /output folder .* does not exist/));

  it("unknown output types", async () => {
    await expectCode(convert(TINY, join(dir, "x.gguf"), { type: "q3_K" }), "JSD_INVALID_ARGUMENT", /unsupported type 'q3_K'/);
    await expectCode(convert(TINY, join(dir, "x.gguf"), { vaeType: "f8" }), "JSD_INVALID_ARGUMENT", /unsupported VAE type 'f8'/);
  });
});

describe("jsd CLI", () => {
  function io() {
    const out = { stdout: "", stderr: "" };
    return {
      out,
      io: {
        stdout: { write: (s: string) => (out.stdout += s) },
        stderr: { write: (s: string) => (out.stderr += s) },
      },
    };
  }
  const run = (args: string[], sink = io()) => runCli(["node", "jsd", ...args], sink.io).then((code) => ({ code, ...sink.out }));

  it("convert, info, info --json --verify", async () => {
    const d = await outDir();
    const out = join(d, "m.gguf");
    const c = await run(["convert", TINY, "-o", out, "--type", "Q8_0", "--vae-type", "f16"]);
    expect(c.code).toBe(0);
    expect(c.stderr).toMatch(/\[\s*\d+\/964\]/);
    expect(c.stderr).toMatch(/wrote .*m\.gguf: .* 964 tensors/);

    const i = await run(["info", out]);
    expect(i.code).toBe(0);
    expect(i.stdout).toMatch(/JSD model, format version 2, GGUF v3/);
    expect(i.stdout).toMatch(/file type: +q8_0/);
    expect(i.stdout).toMatch(/text encoder +36 /);
    expect(i.stdout).toMatch(/unet +684 +2,446,788 /);
    expect(i.stdout).toMatch(/vae +244 +1,399,879 /);

    const j = await run(["info", out, "--json", "--verify"]);
    expect(j.code).toBe(0);
    const summary = JSON.parse(j.stdout);
    expect(summary).toMatchObject({ formatVersion: 2, fileType: "q8_0", tensors: 964, verified: true, ggufVersion: 3 });
    expect(summary.components.vae.types).toEqual({ f32: expect.any(Number), f16: expect.any(Number) });
    expect(summary.config.unet.block_out_channels).toEqual([32, 32, 64, 64]);
    expect(summary.configFiles.scheduler._class_name).toBe("PNDMScheduler");

    // a flipped data byte is caught by --verify
    const bytes = await readFile(out);
    bytes[bytes.length - 100] ^= 0xff;
    await writeFile(out, bytes);
    const v = await run(["info", out, "--verify"]);
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/does not match jsd\.data_sha256/);
  });

  it("one-line errors and non-zero exits", async () => {
    const d = await outDir();
    const out = join(d, "m.gguf");
    await writeFile(out, "x");
    const e = await run(["convert", TINY, "-o", out]);
    expect(e.code).toBe(1);
    expect(e.stderr.trim().split("\n")).toHaveLength(1);
    expect(e.stderr).toMatch(/^jsd: .*already exists.*\(JSD_EXISTS\)\n$/);

    const bad = await run(["info", out]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^jsd: .*not a valid GGUF file.*\(JSD_BAD_FILE\)\n$/);

    const t = await run(["convert", TINY, "-o", join(d, "n.gguf"), "--type", "q9"]);
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/unsupported --type 'q9'/);
    expect(await readdir(d)).toEqual(["m.gguf"]);

    const usage = await run(["convert", TINY]);
    expect(usage.code).not.toBe(0);
    expect(usage.stderr).toMatch(/--output/);
  });
});
