// The HTTP server for real: createServer() on 127.0.0.1 (a free port) with the embedded tiny model,
// called over HTTP with fetch. AUTOMATIC1111's API (txt2img, img2img, progress, interrupt, the
// lists, model switching), our jobs API (POST, SSE, PNG, cancel), and the refusals: 400, 401, 413,
// 422, 429.
import { spawn } from "node:child_process";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { judge, SHAPE_GENERATION } from "../../lib/eval/shape-judge.js";
import { decodeImageBytes, readPngText } from "../../lib/image/png.js";
import { DEFAULT_MODEL_PATH, loadModel, type Model } from "../../lib/model.js";
import { createServer, type JsdServer } from "../../lib/server/index.js";
import { tempDirs } from "../helpers/temp-dirs.js";
import { until } from "../helpers/until.js";

const PROMPT = "白い背景に赤い丸";
const SEED = 3;
/** The shape rules' settings (64×64, PNDM 20 steps, guidance 7.5), in A1111's names. */
const A1111_SHAPES = { prompt: PROMPT, seed: SEED, steps: SHAPE_GENERATION.steps, cfg_scale: SHAPE_GENERATION.guidanceScale, width: 64, height: 64, sampler_name: "PLMS" };

const tempDir = tempDirs("jsd-server-");
const servers: JsdServer[] = [];
async function start(options: Parameters<typeof createServer>[0] = {}): Promise<string> {
  const server = await createServer({ port: 0, ...options });
  servers.push(server);
  return server.listen();
}

function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
}

function pixels(base64: string): Uint8Array {
  return decodeImageBytes(new Uint8Array(Buffer.from(base64, "base64"))).rgba;
}


/** Reads a Server-Sent Events stream to its end: [event, data] pairs in order. */
async function readEvents(response: Response): Promise<Array<{ id: number; event: string; data: any }>> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true });
  return text
    .split("\n\n")
    .filter((block) => block.startsWith("id:"))
    .map((block) => {
      const field = (name: string) => block.split("\n").find((l) => l.startsWith(`${name}: `))!.slice(name.length + 2);
      return { id: Number(field("id")), event: field("event"), data: JSON.parse(field("data")) };
    });
}

let base = "";
let direct: Model;

beforeAll(async () => {
  base = await start();
  direct = await loadModel();
}, 60_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await direct?.close();
});

describe("AUTOMATIC1111 API", () => {
  it("txt2img: the picture the prompt asks for, the same pixels as generate(), A1111's info and PNG text", async () => {
    const response = await post(`${base}/sdapi/v1/txt2img`, { ...A1111_SHAPES, enable_hr: false, restore_faces: false, alwayson_scripts: {}, subseed: -1 });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { images: string[]; parameters: Record<string, unknown>; info: string };
    expect(body.images).toHaveLength(1);
    const rgba = pixels(body.images[0]);
    const j = judge(rgba, 64, 64);
    expect([j.fg, j.bg, j.shape]).toEqual(["red", "white", "circle"]);
    const [expected] = await direct.generate({ prompt: PROMPT, seed: SEED, steps: SHAPE_GENERATION.steps, guidanceScale: SHAPE_GENERATION.guidanceScale, width: 64, height: 64, scheduler: "pndm" });
    expect(Buffer.from(rgba).equals(Buffer.from(expected.rgba))).toBe(true);

    expect(body.parameters.prompt).toBe(PROMPT);
    const info = JSON.parse(body.info);
    expect(info).toMatchObject({ seed: SEED, all_seeds: [SEED], prompt: PROMPT, negative_prompt: "", steps: 20, cfg_scale: 7.5, sampler_name: "PNDM", width: 64, height: 64 });
    expect(info.ignored).toEqual(["alwayson_scripts", "enable_hr", "restore_faces", "subseed"]);
    const text = readPngText(new Uint8Array(Buffer.from(body.images[0], "base64")));
    expect(info.infotexts[0]).toBe(text.parameters);
    expect(text.parameters).toContain("Seed: 3");
  }, 60_000);

  it("txt2img: seed -1 is random, batch_size × n_iter images with consecutive seeds", async () => {
    const response = await post(`${base}/sdapi/v1/txt2img`, { ...A1111_SHAPES, seed: -1, steps: 2, batch_size: 2, n_iter: 2 });
    const info = JSON.parse(((await response.json()) as { info: string }).info);
    expect(info.all_seeds).toHaveLength(4);
    expect(info.all_seeds.map((s: number) => s - info.seed)).toEqual([0, 1, 2, 3]);
  }, 60_000);

  it("img2img with a mask: init_images, denoising_strength; the same pixels as generate()", async () => {
    const [init] = await direct.generate({ prompt: PROMPT, seed: 1, steps: 4, width: 64, height: 64 });
    const mask = new Uint8Array(64 * 64 * 4).fill(255);
    for (let i = 0; i < 64 * 32 * 4; i++) mask[i] = i % 4 === 3 ? 255 : 0; // top half kept
    const { encodePng } = await import("../../lib/image/png.js");
    const maskPng = encodePng(mask, 64, 64);
    const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
    const response = await post(`${base}/sdapi/v1/img2img`, { prompt: "青い背景に黄色い星", seed: 5, steps: 10, sampler_name: "DDIM", init_images: [`data:image/png;base64,${b64(init.png)}`], mask: b64(maskPng), denoising_strength: 0.7, inpainting_fill: 1, mask_blur: 4 });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { images: string[]; info: string };
    const [expected] = await direct.generate({ prompt: "青い背景に黄色い星", seed: 5, steps: 10, scheduler: "ddim", guidanceScale: 7, initImage: init.png, mask: maskPng, strength: 0.7 });
    expect(Buffer.from(pixels(body.images[0])).equals(Buffer.from(expected.rgba))).toBe(true);
    expect(JSON.parse(body.info)).toMatchObject({ denoising_strength: 0.7, ignored: ["mask_blur"] });
  }, 60_000);

  it("progress while running, with a preview; interrupt returns the image so far", async () => {
    const pending = post(`${base}/sdapi/v1/txt2img`, { ...A1111_SHAPES, width: 256, height: 256, steps: 150 });
    const progress = await until(async () => {
      const p = (await (await fetch(`${base}/sdapi/v1/progress`)).json()) as { progress: number; state: { sampling_step: number }; current_image: string | null };
      return p.progress > 0 && p.state.sampling_step >= 2 && p.current_image ? p : undefined;
    });
    expect(progress.progress).toBeLessThan(1);
    expect(decodeImageBytes(new Uint8Array(Buffer.from(progress.current_image!, "base64"))).width).toBe(32);
    expect((await post(`${base}/sdapi/v1/interrupt`, "")).status).toBe(200);
    const response = await pending;
    expect(response.status).toBe(200);
    const body = (await response.json()) as { images: string[]; info: string };
    expect(body.images).toHaveLength(1);
    const info = JSON.parse(body.info);
    expect(info.interrupted).toBe(true);
    expect(info.infotexts[0]).toMatch(/Interrupted/i);
  }, 60_000);

  it("lists samplers, schedulers and models; empty lists where there is nothing", async () => {
    const samplers = (await (await fetch(`${base}/sdapi/v1/samplers`)).json()) as Array<{ name: string }>;
    expect(samplers.map((s) => s.name)).toEqual(expect.arrayContaining(["Euler a", "Euler", "LMS", "DDIM", "PNDM", "DPM++ 2M", "Euler a Karras", "LMS Karras"]));
    const schedulers = (await (await fetch(`${base}/sdapi/v1/schedulers`)).json()) as Array<{ name: string }>;
    expect(schedulers.map((s) => s.name)).toEqual(["automatic", "karras"]);
    const models = (await (await fetch(`${base}/sdapi/v1/sd-models`)).json()) as Array<{ model_name: string; filename: string }>;
    expect(models).toEqual([expect.objectContaining({ model_name: "tiny-jsd-shapes", filename: "tiny-jsd-shapes.gguf" })]);
    expect(await (await fetch(`${base}/sdapi/v1/loras`)).json()).toEqual([]);
    expect(await (await fetch(`${base}/sdapi/v1/scripts`)).json()).toEqual({ txt2img: [], img2img: [] });
    const flags = (await (await fetch(`${base}/sdapi/v1/cmd-flags`)).json()) as Record<string, unknown>;
    expect(flags).toMatchObject({ host: "127.0.0.1", api_key: null });
  });

  it("sampler names map to our schedulers, Karras variants included; unknown ones are refused", async () => {
    const karras = await post(`${base}/sdapi/v1/txt2img`, { ...A1111_SHAPES, steps: 2, sampler_name: "Euler a", scheduler: "Karras" });
    expect(JSON.parse(((await karras.json()) as { info: string }).info).sampler_name).toBe("Euler a Karras");
    const bad = await post(`${base}/sdapi/v1/txt2img`, { ...A1111_SHAPES, sampler_name: "UniPC" });
    expect(bad.status).toBe(422);
    expect(((await bad.json()) as { detail: string }).detail).toMatch(/UniPC/);
    const noKarras = await post(`${base}/sdapi/v1/txt2img`, { ...A1111_SHAPES, sampler_name: "DDIM Karras" });
    expect(noKarras.status).toBe(422);
  }, 30_000);

  it("422 with FastAPI's detail for a wrong type or value; 400 for malformed JSON", async () => {
    const wrong = await post(`${base}/sdapi/v1/txt2img`, { ...A1111_SHAPES, steps: "twenty", width: 65 });
    expect(wrong.status).toBe(422);
    const detail = ((await wrong.json()) as { detail: Array<{ loc: string[]; msg: string }> }).detail;
    expect(detail.map((d) => d.loc.join("."))).toEqual(expect.arrayContaining(["body.steps", "body.width"]));
    const tooMany = await post(`${base}/sdapi/v1/txt2img`, { ...A1111_SHAPES, steps: 151 });
    expect(tooMany.status).toBe(422);
    expect(((await tooMany.json()) as { detail: string }).detail).toMatch(/steps: at most 150/);
    const malformed = await post(`${base}/sdapi/v1/txt2img`, '{"prompt": "赤い丸",');
    expect(malformed.status).toBe(400);
    const notPng = await post(`${base}/sdapi/v1/img2img`, { prompt: "x", init_images: [Buffer.from("not a png").toString("base64")] });
    expect(notPng.status).toBe(422);
  });

  it("switches models by sd_model_checkpoint among the files of --models-dir, and refuses other names", async () => {
    const dir = tempDir();
    copyFileSync(DEFAULT_MODEL_PATH, join(dir, "a.gguf"));
    copyFileSync(DEFAULT_MODEL_PATH, join(dir, "b.gguf"));
    const url = await start({ modelsDir: dir });
    const names = ((await (await fetch(`${url}/sdapi/v1/sd-models`)).json()) as Array<{ model_name: string }>).map((m) => m.model_name);
    expect(names).toEqual(["a", "b"]);
    expect(((await (await fetch(`${url}/sdapi/v1/options`)).json()) as { sd_model_checkpoint: string }).sd_model_checkpoint).toMatch(/^a\.gguf/);
    expect((await post(`${url}/sdapi/v1/options`, { sd_model_checkpoint: "b" })).status).toBe(200);
    expect(((await (await fetch(`${url}/sdapi/v1/options`)).json()) as { sd_model_checkpoint: string }).sd_model_checkpoint).toMatch(/^b\.gguf/);
    for (const name of ["../b", "/etc/passwd", "c"]) expect((await post(`${url}/sdapi/v1/options`, { sd_model_checkpoint: name })).status).toBe(422);
  }, 30_000);
});

describe("jobs API", () => {
  it("POST → 202, SSE events in order, then the PNG: generate()'s pixels", async () => {
    const response = await post(`${base}/v1/jobs`, { prompt: PROMPT, seed: SEED, steps: 20, guidanceScale: 7.5, width: 64, height: 64 });
    expect(response.status).toBe(202);
    const job = (await response.json()) as { id: string; statusUrl: string };
    const events = await readEvents(await fetch(`${base}/v1/jobs/${job.id}/events`));
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1));
    const names = events.map((e) => e.event);
    expect(names[0]).toBe("status");
    expect(names.at(-1)).toBe("finished");
    expect(events.at(-1)!.data.status).toBe("done");
    expect(names.indexOf("image")).toBeLessThan(names.length - 1);
    // Progress arrives step by step (the events may start after a few steps were done already).
    const progress = events.filter((e) => e.event === "progress");
    const steps = progress.map((e) => e.data.step);
    expect(steps.at(-1)).toBe(progress[0].data.totalSteps); // PNDM runs steps + 1 UNet steps
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    const view = (await (await fetch(`${base}${job.statusUrl}`)).json()) as { status: string; results: Array<{ url: string; seed: string }> };
    expect(view.status).toBe("done");
    expect(view.results[0].seed).toBe(String(SEED));
    const png = new Uint8Array(await (await fetch(`${base}${view.results[0].url}`)).arrayBuffer());
    const [expected] = await direct.generate({ prompt: PROMPT, seed: SEED, steps: 20, guidanceScale: 7.5, width: 64, height: 64 });
    expect(Buffer.from(decodeImageBytes(png).rgba).equals(Buffer.from(expected.rgba))).toBe(true);
  }, 60_000);

  it("streams previews and progress of a running job; DELETE cancels it", async () => {
    const job = (await (await post(`${base}/v1/jobs`, { prompt: PROMPT, steps: 150, width: 256, height: 256 })).json()) as { id: string };
    const stream = fetch(`${base}/v1/jobs/${job.id}/events`).then(readEvents);
    await until(async () => ((await (await fetch(`${base}/v1/jobs/${job.id}`)).json()) as { step: number }).step >= 3 || undefined);
    const cancel = await fetch(`${base}/v1/jobs/${job.id}`, { method: "DELETE" });
    expect(cancel.status).toBe(200);
    const events = await stream;
    expect(events.some((e) => e.event === "preview" && e.data.png.length > 0)).toBe(true);
    expect(events.at(-1)!.data.status).toBe("cancelled");
    const view = (await (await fetch(`${base}/v1/jobs/${job.id}`)).json()) as { status: string; results: unknown[] };
    expect(view).toMatchObject({ status: "cancelled", results: [] });
    expect((await fetch(`${base}/v1/jobs/${job.id}`, { method: "DELETE" })).status).toBe(409);
  }, 60_000);

  it("refuses unknown fields and bad values with 400 and a code; 404 for unknown jobs", async () => {
    const unknown = await post(`${base}/v1/jobs`, { prompt: "x", cfg_scale: 7 });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("JSD_INVALID_ARGUMENT");
    const karras = await post(`${base}/v1/jobs`, { prompt: "x", scheduler: "ddim", karras: true });
    expect(karras.status).toBe(400);
    expect(((await karras.json()) as { error: { message: string } }).error.message).toMatch(/karras/);
    const missing = await fetch(`${base}/v1/jobs/00000000-0000-4000-8000-000000000000`);
    expect(missing.status).toBe(404);
    expect((await fetch(`${base}/v1/jobs/..%2F..%2Fetc`)).status).toBe(400);
    expect((await fetch(`${base}/v1/jobs/00000000-0000-4000-8000-000000000000/images/..%2Fx.png`)).status).toBe(400);
  });

  it("tokenizes for the page's counter; serves the OpenAPI description", async () => {
    const tokens = (await (await post(`${base}/v1/tokenize`, { text: PROMPT })).json()) as { count: number; limit: number; dropped: number };
    expect(tokens).toMatchObject({ limit: 76, dropped: 0 });
    expect(tokens.count).toBe(direct.tokenize(PROMPT).count);
    const openapi = (await (await fetch(`${base}/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(openapi.openapi).toMatch(/^3\./);
    expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(["/sdapi/v1/txt2img", "/v1/jobs", "/v1/jobs/{id}/events"]));
  });
});

describe("limits and access", () => {
  it("429 with Retry-After past the queue limit", async () => {
    const url = await start({ limits: { maxQueue: 1 } });
    const long = { prompt: PROMPT, steps: 150, width: 256, height: 256 };
    const first = (await (await post(`${url}/v1/jobs`, long)).json()) as { id: string };
    const second = await post(`${url}/v1/jobs`, long);
    expect(second.status).toBe(202);
    const third = await post(`${url}/v1/jobs`, long);
    expect(third.status).toBe(429);
    expect(Number(third.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(((await third.json()) as { error: { code: string } }).error.code).toBe("JSD_QUEUE_FULL");
    const secondId = ((await second.json()) as { id: string }).id;
    expect(((await (await fetch(`${url}/v1/jobs/${secondId}`)).json()) as { queuePosition: number }).queuePosition).toBe(1);
    for (const id of [secondId, first.id]) await fetch(`${url}/v1/jobs/${id}`, { method: "DELETE" });
  }, 30_000);

  it("413 for a body over the limit", async () => {
    const url = await start({ limits: { bodyLimit: 4096 } });
    const response = await post(`${url}/sdapi/v1/img2img`, { prompt: "x", init_images: ["A".repeat(8192)] });
    expect(response.status).toBe(413);
  });

  it("401 without the key; the page itself needs none", async () => {
    const url = await start({ apiKey: "s3cret-key-for-tests" });
    expect((await fetch(`${url}/sdapi/v1/samplers`)).status).toBe(401);
    expect((await fetch(`${url}/v1/info`, { headers: { authorization: "Bearer wrong-key-xxxx" } })).status).toBe(401);
    expect((await fetch(`${url}/v1/info`, { headers: { authorization: "Bearer s3cret-key-for-tests" } })).status).toBe(200);
    expect((await fetch(`${url}/`)).status).toBe(200);
  });

  it("several keys are several clients: maxJobsPerClient caps each one's unfinished jobs", async () => {
    const url = await start({ apiKey: ["key-of-client-one", "key-of-client-two"], limits: { maxJobsPerClient: 1 } });
    const as = (key: string) => ({ authorization: `Bearer ${key}` });
    const long = { prompt: PROMPT, steps: 150, width: 256, height: 256 };
    const first = await post(`${url}/v1/jobs`, long, as("key-of-client-one"));
    expect(first.status).toBe(202);
    const again = await post(`${url}/v1/jobs`, long, as("key-of-client-one"));
    expect(again.status).toBe(429);
    expect(((await again.json()) as { error: { message: string } }).error.message).toMatch(/this client already has 1 unfinished/);
    const other = await post(`${url}/v1/jobs`, long, as("key-of-client-two"));
    expect(other.status).toBe(202);
    for (const r of [first, other]) await fetch(`${url}/v1/jobs/${((await r.json()) as { id: string }).id}`, { method: "DELETE", headers: as("key-of-client-one") });
  }, 30_000);

  it("refuses to listen beyond loopback without a key", async () => {
    await expect(createServer({ port: 0, host: "0.0.0.0" })).rejects.toThrow(/without an API key/);
  });

  it("a client that disconnects from txt2img takes its job with it", async () => {
    const url = await start();
    const controller = new AbortController();
    const request = fetch(`${url}/sdapi/v1/txt2img`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...A1111_SHAPES, width: 256, height: 256, steps: 150 }), signal: controller.signal }).catch(() => undefined);
    const server = servers.at(-1)!;
    const job = await until(async () => {
      const running = await server.jobs.current();
      return running && running.step >= 2 ? running : undefined;
    });
    controller.abort();
    await request;
    await until(async () => (job.finished ? true : undefined));
    expect(job.status).toBe("cancelled");
  }, 30_000);

  it("close() cancels the running job and answers its waiting client", async () => {
    const server = await createServer({ port: 0 });
    const url = await server.listen();
    const pending = post(`${url}/sdapi/v1/txt2img`, { ...A1111_SHAPES, width: 256, height: 256, steps: 150 });
    await until(async () => ((await server.jobs.current()) ? true : undefined));
    const closed = server.close();
    const response = await pending;
    expect(response.status).toBe(503);
    await closed;
  }, 30_000);

  it("jsd serve: prints its URL, serves, and exits 0 on SIGTERM after cancelling the running job", async () => {
    const cli = new URL("../../dist/cli/main.js", import.meta.url).pathname;
    const child = spawn(process.execPath, [cli, "serve", "--port", "0"], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      const url = await until(async () => /page (http:\/\/127\.0\.0\.1:\d+)\//.exec(stderr)?.[1]);
      const pending = post(`${url}/sdapi/v1/txt2img`, { ...A1111_SHAPES, width: 256, height: 256, steps: 150 });
      await until(async () => (((await (await fetch(`${url}/sdapi/v1/progress`)).json()) as { state: { sampling_step: number } }).state.sampling_step >= 2 || undefined));
      child.kill("SIGTERM");
      expect((await pending).status).toBe(503);
      expect(await exited).toBe(0);
      expect(stderr).toMatch(/SIGTERM: stopping \(cancelling the running job\)/);
    } finally {
      child.kill("SIGKILL");
    }
  }, 30_000);
});
