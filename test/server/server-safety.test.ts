// The server and the safety checker, for real (createServer() on 127.0.0.1, a free port): with a
// model that has a checker, every job runs it and the A1111 response marks flagged images; the
// server decides, so a client cannot switch it off; `safetyChecker: false` (jsd serve
// --no-safety-checker) turns it off for every job, and the images say so.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeImageBytes, readPngText } from "../../lib/image/png.js";
import { readCases } from "../../lib/parity/cases.js";
import { pipelineCaseInput } from "../../lib/parity/pipeline.js";
import { createServer, type JsdServer } from "../../lib/server/index.js";
import { referenceCases, tinySafetyModel } from "../helpers/models.js";

const servers: JsdServer[] = [];
async function start(options: Parameters<typeof createServer>[0]): Promise<string> {
  const server = await createServer({ port: 0, previewEvery: 0, load: { threads: 1 }, ...options });
  servers.push(server);
  return server.listen();
}

function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

/** A reference pipeline case the reference checker flags (safety_checker/pipeline_96x64_b8, its last image), in A1111's names. */
let flaggedRequest: Record<string, unknown>;
let model: string;

beforeAll(async () => {
  model = await tinySafetyModel("f32");
  const [c] = await readCases(join(referenceCases, "pipeline", "pndm_64x96_s4_g7.5_neg.safetensors"));
  const o = pipelineCaseInput(c);
  expect(o.scheduler).toBe("pndm");
  flaggedRequest = { prompt: o.prompt, negative_prompt: o.negativePrompt, seed: Number(o.seed), steps: o.steps, cfg_scale: o.guidanceScale, width: o.width, height: o.height, sampler_name: "PLMS" };
}, 60_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

const isBlack = (rgba: Uint8Array) => rgba.every((v, i) => v === (i % 4 === 3 ? 255 : 0));

describe("a server whose model has a safety checker", () => {
  it("runs it on every job: A1111's info lists nsfw_content_detected, the flagged image is black and its text says so", async () => {
    const base = await start({ model });
    // A client's attempt to switch it off is one of the fields A1111's routes ignore.
    const response = await post(`${base}/sdapi/v1/txt2img`, { ...flaggedRequest, safety_checker: false, safetyChecker: false });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { images: string[]; info: string };
    const info = JSON.parse(body.info);
    expect(info.nsfw_content_detected).toEqual([true]);
    expect(info.infotexts[0]).toMatch(/Safety checker: flagged \(image blacked out\)/);
    expect(info.ignored).toEqual(expect.arrayContaining(["safety_checker", "safetyChecker"]));
    const png = new Uint8Array(Buffer.from(body.images[0], "base64"));
    expect(isBlack(decodeImageBytes(png).rgba)).toBe(true);
    expect(readPngText(png).parameters).toMatch(/Safety checker: flagged/);

    const flags = await (await fetch(`${base}/sdapi/v1/cmd-flags`)).json();
    expect(flags.safety_checker).toBe(true);
  });

  it("the jobs API refuses a client's safetyChecker field, and reports each result's decision", async () => {
    const base = await start({ model });
    const refused = await post(`${base}/v1/jobs`, { prompt: "x", safetyChecker: false });
    expect(refused.status).toBe(400);
    const { prompt, negative_prompt, seed, steps, cfg_scale, width, height } = flaggedRequest;
    const created = await post(`${base}/v1/jobs`, { prompt, negativePrompt: negative_prompt, seed, steps, guidanceScale: cfg_scale, width, height, scheduler: "pndm" });
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as { id: string };
    let job: { status: string; results: Array<{ nsfwContentDetected: boolean }> };
    do {
      await new Promise((r) => setTimeout(r, 50));
      job = await (await fetch(`${base}/v1/jobs/${id}`)).json();
    } while (job.status === "queued" || job.status === "running");
    expect(job.status).toBe("done");
    expect(job.results.map((r) => r.nsfwContentDetected)).toEqual([true]);
  });
});

describe("a server started with safetyChecker: false (jsd serve --no-safety-checker)", () => {
  it("runs no checker: the image is the model's, and its text says the checker was off", async () => {
    const base = await start({ model, safetyChecker: false });
    const body = (await (await post(`${base}/sdapi/v1/txt2img`, flaggedRequest)).json()) as { images: string[]; info: string };
    const info = JSON.parse(body.info);
    expect(info.nsfw_content_detected).toEqual([false]);
    expect(info.infotexts[0]).toMatch(/Safety checker: off/);
    expect(isBlack(decodeImageBytes(new Uint8Array(Buffer.from(body.images[0], "base64"))).rgba)).toBe(false);
    expect((await (await fetch(`${base}/sdapi/v1/cmd-flags`)).json()).safety_checker).toBe(false);
  });
});
