// The engine against the reference cases (tokenizer, text encoder, UNet, VAE), through the
// parity runner. Tolerances for f32 are issue #4's; for f16 and q8_0 they are the errors
// measured on the tiny model (f16: 3.3e-3 TE / 3.2e-3 UNet / 4.0e-3 VAE; q8_0: 7.3e-2 TE /
// 8.0e-2 UNet) with a margin of about 2x.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel, type Model } from "../../lib/model.js";
import { readCases, type CaseFile } from "../../lib/parity/cases.js";
import { runCases, type CaseResult } from "../../lib/parity/run.js";
import { referenceCases, tinyModel } from "../helpers/models.js";

const ENGINE_KINDS = ["tokenizer", "text_encoder", "unet", "vae_decode", "vae_encode"];
let cases: CaseFile[];

beforeAll(async () => {
  cases = (await readCases(referenceCases)).filter((c) => ENGINE_KINDS.includes(c.kind));
});

function expectAllPass(results: CaseResult[]) {
  const failed = results.filter((r) => r.status !== "PASS");
  expect(failed.map((r) => `${r.name}: ${r.stats?.maxAbs} > ${r.tolerance} ${r.note ?? ""}`)).toEqual([]);
  const counts = Object.fromEntries(ENGINE_KINDS.map((k) => [k, results.filter((r) => r.kind === k).length]));
  expect(counts).toEqual({ tokenizer: 40, text_encoder: 2, unet: 6, vae_decode: 3, vae_encode: 2 });
}

describe.each([
  { type: "f32" as const, tolerances: {} },
  { type: "f16" as const, tolerances: { text_encoder: 8e-3, unet: 8e-3, vae_decode: 8e-3, vae_encode: 8e-3 } },
  { type: "q8_0" as const, tolerances: { text_encoder: 0.15, unet: 0.16, vae_decode: 8e-3, vae_encode: 8e-3 } },
])("tiny model at $type", ({ type, tolerances }) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await tinyModel(type), { threads: 2 });
  });
  afterAll(async () => {
    await model?.close();
  });

  it("matches every tokenizer, text-encoder, UNet and VAE reference case", async () => {
    expectAllPass(await runCases(model, cases, tolerances));
  });

  if (type !== "f32") {
    it("is not bit-identical to f32 (the tolerance is really exercised)", async () => {
      const results = await runCases(model, cases.filter((c) => c.kind === "unet"));
      expect(Math.max(...results.map((r) => r.stats!.maxAbs))).toBeGreaterThan(1e-4);
    });
  }
});

describe("flash attention switch", () => {
  it("stays within the f16 tolerance of the reference", async () => {
    const model = await loadModel(await tinyModel("f32"), { threads: 2, flashAttention: true });
    try {
      const results = await runCases(model, cases.filter((c) => c.kind === "unet" || c.kind.startsWith("vae")), { unet: 8e-3, vae_decode: 8e-3, vae_encode: 8e-3 });
      expect(results.filter((r) => r.status !== "PASS")).toEqual([]);
    } finally {
      await model.close();
    }
  });
});

describe("parity runner CLI", () => {
  const cli = new URL("../../dist/parity/cli.js", import.meta.url).pathname;
  it.skipIf(!existsSync(cli))("prints one line per case and the summary, exit 0 when nothing fails", { timeout: 180_000 }, async () => {
    const result = spawnSync(process.execPath, [cli, "--model", await tinyModel("f32"), "--cases", referenceCases, "--threads", "1"], { encoding: "utf8" });
    expect(result.stderr).toBe("");
    const lines = result.stdout.trim().split("\n");
    expect(lines.at(-1)).toMatch(/^\d+ passed, 0 failed(, \d+ skipped)?$/);
    expect(lines.some((l) => /^unet_b2_8x12_t999\s+unet\s+abs \S+\s+rel \S+\s+tol 1\.00e-3\s+PASS$/.test(l))).toBe(true);
    expect(result.status).toBe(0);
  });

  it.skipIf(!existsSync(cli))("banded and direct convolutions (used for large images) match the reference too", async () => {
    // JSD_DIRECT_CONV_MB=0 makes every 3x3 convolution run in one-row bands, and strided ones
    // through ggml's direct convolution, as they do above 64 MB of im2col.
    const cases = ["unet", "vae_decode", "vae_encode"].map((k) => join(referenceCases, k));
    for (const folder of cases) {
      const result = spawnSync(process.execPath, [cli, "--model", await tinyModel("f32"), "--cases", folder, "--threads", "1"], {
        encoding: "utf8",
        env: { ...process.env, JSD_DIRECT_CONV_MB: "0" },
      });
      expect(result.stdout.trim().split("\n").at(-1)).toMatch(/^\d+ passed, 0 failed$/);
      expect(result.status).toBe(0);
    }
  });

  it.skipIf(!existsSync(cli))("exits 1 when a case fails", async () => {
    const result = spawnSync(process.execPath, [cli, "--model", await tinyModel("q8_0"), "--cases", join(referenceCases, "unet"), "--threads", "1"], { encoding: "utf8" });
    expect(result.stdout).toMatch(/FAIL/);
    expect(result.stdout.trim().split("\n").at(-1)).toMatch(/^\d+ passed, [1-9]\d* failed/);
    expect(result.status).toBe(1);
  });
});
