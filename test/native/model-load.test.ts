// The loader refuses malformed, truncated and foreign files with JSD_BAD_MODEL (or
// JSD_NOT_FOUND), naming what is wrong, and the process survives every one of them.
import { randomBytes } from "node:crypto";
import { copyFileSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { gguf } from "../../lib/formats/gguf-writer.js";
import { sectionKey } from "../../lib/formats/model-keys.js";
import { loadModel } from "../../lib/model.js";
import { editGguf, scratchPath, tinyModel } from "../helpers/models.js";

async function expectBadModel(path: string, message: RegExp, code = "JSD_BAD_MODEL") {
  await expect(loadModel(path)).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
}

describe("loadModel() on bad files", () => {
  it("loads the good file and reports its configs", async () => {
    const model = await loadModel(await tinyModel("f32"));
    expect(model.textHiddenSize).toBe(32);
    expect(model.latentChannels).toBe(4);
    expect(model.vaeScaleFactor).toBe(8);
    expect(model.scalingFactor).toBeCloseTo(0.18215, 6);
    expect(JSON.parse(model.metadata[sectionKey("unet", "config")]).block_out_channels).toEqual([32, 32, 64, 64]);
    expect(model.memory().map((m) => m.name)).toEqual(["text_encoder", "unet", "vae"]);
    await model.close();
  });

  it("missing file", async () => {
    await expectBadModel(scratchPath("nope.gguf"), /cannot open/, "JSD_NOT_FOUND");
  });

  it("empty file, random bytes and a file of another kind (wrong magic)", async () => {
    writeFileSync(scratchPath("empty.gguf"), "");
    await expectBadModel(scratchPath("empty.gguf"), /not a GGUF model file/);
    writeFileSync(scratchPath("random.gguf"), randomBytes(4096));
    await expectBadModel(scratchPath("random.gguf"), /not a GGUF model file/);
    await expectBadModel(new URL("../fixtures/tiny-jsd/unet/diffusion_pytorch_model.safetensors", import.meta.url).pathname, /wrong magic/);
  });

  it("GGUF magic followed by garbage", async () => {
    writeFileSync(scratchPath("garbage.gguf"), Buffer.concat([Buffer.from("GGUF"), randomBytes(1000)]));
    await expectBadModel(scratchPath("garbage.gguf"), /not a valid GGUF file/);
  });

  it("truncated inside the header, at many cut points", async () => {
    const good = readFileSync(await tinyModel("f32"));
    for (const cut of [8, 24, 100, 1000, 10_000, 100_000]) {
      writeFileSync(scratchPath("cut.gguf"), good.subarray(0, cut));
      await expectBadModel(scratchPath("cut.gguf"), /not a valid GGUF file|truncated/);
    }
  });

  it("truncated anywhere in the tensor data", async () => {
    const good = await tinyModel("f32");
    const size = statSync(good).size;
    for (const fraction of [0.3, 0.6, 0.9, 0.999]) {
      copyFileSync(good, scratchPath("short.gguf"));
      truncateSync(scratchPath("short.gguf"), Math.floor(size * fraction));
      await expectBadModel(scratchPath("short.gguf"), /truncated/);
    }
    copyFileSync(good, scratchPath("short.gguf"));
    // The writer pads the file to the 32-byte alignment: cut just past that padding.
    truncateSync(scratchPath("short.gguf"), size - 33);
    await expectBadModel(scratchPath("short.gguf"), /truncated: tensor '.+' ends at byte/);
  });

  it("a GGUF of another architecture", async () => {
    const path = await editGguf(await tinyModel("f32"), scratchPath("llama.gguf"), { setMetadata: { "general.architecture": gguf.str("llama") } });
    await expectBadModel(path, /not a JSD model \(general.architecture is 'llama'\)/);
  });

  it("another format version", async () => {
    const path = await editGguf(await tinyModel("f32"), scratchPath("v9.gguf"), { setMetadata: { "jsd.format_version": gguf.u32(9) } });
    await expectBadModel(path, /format version 9/);
  });

  it("a missing config key or one of the wrong type", async () => {
    const missing = await editGguf(await tinyModel("f32"), scratchPath("nokey.gguf"), { dropMetadata: ["jsd.unet.layers_per_block"] });
    await expectBadModel(missing, /lacks the metadata key 'jsd.unet.layers_per_block'/);
    const wrongType = await editGguf(await tinyModel("f32"), scratchPath("wrongtype.gguf"), { setMetadata: { "jsd.unet.layers_per_block": gguf.str("2") } });
    await expectBadModel(wrongType, /'jsd.unet.layers_per_block' should be u32 but is str/);
    const absurd = await editGguf(await tinyModel("f32"), scratchPath("absurd.gguf"), { setMetadata: { "jsd.unet.layers_per_block": gguf.u32(100000) } });
    await expectBadModel(absurd, /layers_per_block' = 100000 is outside/);
  });

  it("a plan of row lookups that is missing, names no tensor, or leaves out an embedding", async () => {
    const model = await tinyModel("f32");
    const missing = await editGguf(model, scratchPath("noembeddings.gguf"), { dropMetadata: ["jsd.embeddings"] });
    await expectBadModel(missing, /lacks the metadata key 'jsd.embeddings'/);
    const unknown = await editGguf(model, scratchPath("unknown-embedding.gguf"), {
      setMetadata: { "jsd.embeddings": gguf.strs(["te.embeddings.token_embedding.weight", "te.nothing.weight"]) },
    });
    await expectBadModel(unknown, /jsd.embeddings lists 'te.nothing.weight', which the file does not hold/);
    const partial = await editGguf(model, scratchPath("partial-embeddings.gguf"), {
      setMetadata: { "jsd.embeddings": gguf.strs(["te.embeddings.position_embedding.weight"]) },
    });
    await expectBadModel(partial, /'te.embeddings.token_embedding.weight' is read by rows, but the file's jsd.embeddings does not list it/);
  });

  it("a missing tensor", async () => {
    const path = await editGguf(await tinyModel("f32"), scratchPath("missing.gguf"), { dropTensor: "unet.mid_block.attentions.0.blocks.0.attn2.to_k.weight" });
    await expectBadModel(path, /lacks tensor 'unet.mid_block.attentions.0.blocks.0.attn2.to_k.weight'/);
  });

  it("a tensor with the wrong shape", async () => {
    const path = await editGguf(await tinyModel("f32"), scratchPath("shape.gguf"), { reshape: { name: "te.encoder.layers.1.mlp.fc1.weight", ne: [32, 63] } });
    await expectBadModel(path, /'te.encoder.layers.1.mlp.fc1.weight' has shape \[32, 63\] but the config needs \[32, 64\]/);
  });

  it("a config that disagrees with the tensors", async () => {
    const path = await editGguf(await tinyModel("f32"), scratchPath("cfg.gguf"), { setMetadata: { "jsd.unet.block_out_channels": gguf.u32s([32, 32, 64, 128]) } });
    await expectBadModel(path, /has shape .* but the config needs/);
  });

  it("verify: true checks the converter's SHA-256 and refuses a file with one flipped byte", async () => {
    const good = await tinyModel("f32");
    const model = await loadModel(good, { verify: true });
    await model.close();
    const bad = scratchPath("flipped.gguf");
    const bytes = readFileSync(good);
    bytes[bytes.length - 1000] ^= 0x40; // inside the VAE's tensor data: still a well-formed file
    writeFileSync(bad, bytes);
    (await loadModel(bad)).close(); // without verify it loads (the values are just wrong)
    await expect(loadModel(bad, { verify: true })).rejects.toMatchObject({ code: "JSD_BAD_MODEL", message: expect.stringMatching(/do not match jsd.data_sha256/) });
  });

  it("refuses the inputs the fuzzer found (test/fuzz-corpus/regressions)", async () => {
    const dir = new URL("../fuzz-corpus/regressions/fuzz_model_file/", import.meta.url).pathname;
    const files = readdirSync(dir);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) await expectBadModel(join(dir, file), /./);
  });

  it("leaves the process and other models working", async () => {
    const model = await loadModel(await tinyModel("f32"));
    const out = await model.encodeText(new Int32Array(77).fill(0));
    expect(out.length).toBe(77 * 32);
    await model.close();
  });
});

describe("Model calls with bad arguments", () => {
  it("rejects ids outside the vocabulary, wrong shapes and closed models", async () => {
    const model = await loadModel(await tinyModel("f32"));
    await expect(model.encodeText(new Int32Array([5, 8000]))).rejects.toMatchObject({ code: "JSD_INVALID_ARGUMENT", message: expect.stringMatching(/8000 is outside the vocabulary/) });
    await expect(model.encodeText(new Int32Array(78))).rejects.toMatchObject({ code: "JSD_INVALID_ARGUMENT" });
    await expect(model.predictNoise({ latents: new Float32Array(3 * 64), shape: [1, 3, 8, 8], timesteps: [1], textStates: new Float32Array(77 * 32) })).rejects.toMatchObject({
      code: "JSD_INVALID_ARGUMENT",
      message: expect.stringMatching(/expected 4 channels/),
    });
    await expect(model.predictNoise({ latents: new Float32Array(256), shape: [1, 4, 8, 8], timesteps: [1, 2], textStates: new Float32Array(77 * 32) })).rejects.toThrow(RangeError);
    await expect(model.decodeLatents(new Float32Array(10), [1, 4, 8, 8])).rejects.toThrow(RangeError);
    await expect(model.encodeImage(new Float32Array(3 * 60 * 60), [1, 3, 60, 60])).rejects.toMatchObject({ code: "JSD_INVALID_ARGUMENT" });
    await model.close();
    await expect(model.encodeText(new Int32Array(77))).rejects.toMatchObject({ code: "JSD_CLOSED" });
    expect(() => model.tokenize("赤い丸")).toThrow(expect.objectContaining({ code: "JSD_CLOSED" }));
    await model.close(); // closing twice is harmless
  });

  it("runs calls from several callers in order on the model's thread", async () => {
    const model = await loadModel(await tinyModel("f32"));
    const ids = model.tokenize("赤い丸").ids;
    const results = await Promise.all(Array.from({ length: 6 }, () => model.encodeText(ids)));
    for (const r of results) expect(r).toEqual(results[0]);
    await model.close();
  });
});
