// `jsd serve --redis` with `jsd worker` processes, for real: Debian's redis-server on a free
// loopback port, the server in this process, workers as child processes of the built CLI (dist/).
// A worker killed with SIGKILL mid-queue: its job is found stalled by BullMQ and run again by the
// other worker, and every image is still the one generate() makes with its seed.
import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeImageBytes, encodePng } from "../../lib/image/png.js";
import { loadModel, type Model } from "../../lib/model.js";
import { createServer, type JsdServer } from "../../lib/server/index.js";
import { redisServer, startRedis, type TestRedis } from "../helpers/redis.js";
import { until } from "../helpers/until.js";

const cli = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const SETTINGS = { prompt: "白い背景に赤い丸", steps: 20, width: 128, height: 128 };

function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}


interface WorkerProcess {
  name: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr: () => string;
}

function startWorker(redis: string, name: string): WorkerProcess {
  const child = spawn(process.execPath, [cli, "worker", "--redis", redis, "--name", name, "--lock-ms", "2000", "--threads", "1"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  return { name, child, exited: new Promise((resolve) => child.on("exit", (code) => resolve(code))), stderr: () => stderr };
}

describe.skipIf(!redisServer)("a queue on Redis: jsd serve --redis and jsd worker processes", () => {
  let redis: TestRedis;
  let server: JsdServer;
  let base = "";
  let direct: Model;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    server = await createServer({ port: 0, redis: redis.url, limits: { maxQueue: 100 } });
    base = await server.listen();
    direct = await loadModel(undefined, { threads: 1 });
    workers.push(startWorker(redis.url, "worker-a"), startWorker(redis.url, "worker-b"));
    await until(async () => (workers.every((w) => /jsd worker/.test(w.stderr())) ? true : undefined), 30_000);
  }, 60_000);

  afterAll(async () => {
    for (const w of workers) w.child.kill("SIGKILL");
    await server?.close();
    await direct?.close();
    await redis?.remove();
  });

  it("24 jobs over two workers, one killed with SIGKILL: all done, each the image of its seed", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 24; i++) {
      const response = await post(`${base}/v1/jobs`, { ...SETTINGS, seed: 100 + i });
      expect(response.status).toBe(202);
      ids.push(((await response.json()) as { id: string }).id);
    }
    const view = async (id: string) => (await (await fetch(`${base}/v1/jobs/${id}`)).json()) as { status: string; worker: string | null; results: Array<{ url: string; seed: string }> };
    // Kill worker-a once a few jobs are done and it is busy with another.
    await until(async () => ((await Promise.all(ids.map(view))).filter((v) => v.status === "done").length >= 4 ? true : undefined), 60_000);
    workers[0].child.kill("SIGKILL");
    await workers[0].exited;
    const views = await until(async () => {
      const all = await Promise.all(ids.map(view));
      return all.every((v) => v.status === "done" || v.status === "failed") ? all : undefined;
    }, 120_000);
    expect(views.map((v) => v.status)).toEqual(ids.map(() => "done"));
    // The job worker-a had when it died was found stalled by BullMQ and run again by worker-b.
    const { Queue } = await import("bullmq");
    const queue = new Queue("jsd", { connection: { host: "127.0.0.1", port: redis.port } });
    const stalled = (await Promise.all(ids.map((id) => queue.getJob(id)))).filter((j) => (j!.stalledCounter ?? 0) > 0);
    await queue.close();
    expect(stalled.length).toBeGreaterThanOrEqual(1);
    expect(stalled.map((j) => (j!.returnvalue as { worker: string }).worker)).toEqual(stalled.map(() => "worker-b"));
    expect(new Set(views.map((v) => v.worker))).toEqual(new Set(["worker-a", "worker-b"]));
    for (const [i, v] of views.entries()) {
      expect(v.results[0].seed).toBe(String(100 + i));
      const png = new Uint8Array(await (await fetch(`${base}${v.results[0].url}`)).arrayBuffer());
      const [expected] = await direct.generate({ ...SETTINGS, seed: 100 + i });
      expect(Buffer.from(decodeImageBytes(png).rgba).equals(Buffer.from(expected.rgba))).toBe(true);
    }
  }, 240_000);

  it("the A1111 API behind the queue: txt2img answers with the image; progress reflects the queue", async () => {
    const response = await post(`${base}/sdapi/v1/txt2img`, { prompt: SETTINGS.prompt, steps: 20, width: 128, height: 128, seed: 7, cfg_scale: 7.5, sampler_name: "PNDM" });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { images: string[]; info: string };
    const [expected] = await direct.generate({ ...SETTINGS, seed: 7 });
    expect(Buffer.from(decodeImageBytes(new Uint8Array(Buffer.from(body.images[0], "base64"))).rgba).equals(Buffer.from(expected.rgba))).toBe(true);
    const models = (await (await fetch(`${base}/sdapi/v1/sd-models`)).json()) as Array<{ model_name: string }>;
    expect(models.map((m) => m.model_name)).toEqual(["tiny-jsd-shapes"]);
  }, 60_000);

  it("enqueue() from the library: progress events, then result() with the images of seed and seed + 1", async () => {
    const { createProducer } = await import("../../lib/queue/index.js");
    const producer = createProducer({ redis: redis.url });
    try {
      const job = await producer.enqueue({ ...SETTINGS, seed: 40, numImages: 2 });
      const steps: number[] = [];
      job.on("progress", (e: { step: number }) => steps.push(e.step));
      const images = await job.result();
      expect(images.map((i) => i.seed)).toEqual(["40", "41"]);
      expect(steps.length).toBeGreaterThan(0);
      const [expected] = await direct.generate({ ...SETTINGS, seed: 41 });
      expect(Buffer.from(decodeImageBytes(images[1].png).rgba).equals(Buffer.from(expected.rgba))).toBe(true);
      expect(job.job.worker).toMatch(/^worker-/);
    } finally {
      await producer.close();
    }
  }, 60_000);

  it("cancel reaches the worker through BullMQ's AbortSignal; a bad request fails once, not retried", async () => {
    const long = (await (await post(`${base}/v1/jobs`, { ...SETTINGS, width: 256, height: 256, steps: 150 })).json()) as { id: string };
    await until(async () => (((await (await fetch(`${base}/v1/jobs/${long.id}`)).json()) as { step: number }).step >= 2 ? true : undefined), 60_000);
    expect((await fetch(`${base}/v1/jobs/${long.id}`, { method: "DELETE" })).status).toBe(200);
    await until(async () => (((await (await fetch(`${base}/v1/jobs/${long.id}`)).json()) as { status: string }).status === "cancelled" ? true : undefined), 20_000);

    // A 16×16 init image with a mask passes the server's checks; the worker's generate() refuses
    // a mask under 32×32. That is the request's fault: one attempt, then failed.
    const tiny = Buffer.from(encodePng(new Uint8Array(16 * 16 * 4).fill(255), 16, 16)).toString("base64");
    const bad = (await (await post(`${base}/v1/jobs`, { prompt: "x", steps: 2, initImage: tiny, mask: tiny })).json()) as { id: string };
    const failed = await until(async () => {
      const v = (await (await fetch(`${base}/v1/jobs/${bad.id}`)).json()) as { status: string; error: { code: string; message: string } | null };
      return v.status === "failed" ? v : undefined;
    }, 20_000);
    expect(failed.error).toMatchObject({ code: "JSD_INVALID_ARGUMENT", message: expect.stringMatching(/^mask is 16x16: it must be at least 32x32/) });
    const { Queue } = await import("bullmq");
    const queue = new Queue("jsd", { connection: { host: "127.0.0.1", port: redis.port } });
    expect((await queue.getJob(bad.id))!.attemptsMade).toBe(1);
    await queue.close();
  }, 60_000);

  it("Redis gone: 503 at once, nothing crashes; Redis back empty: the jobs it lost are reported, the rest carries on", async () => {
    const waiting: string[] = [];
    for (let i = 0; i < 3; i++) waiting.push(((await (await post(`${base}/v1/jobs`, { ...SETTINGS, width: 256, height: 256, steps: 100, seed: i })).json()) as { id: string }).id);
    await redis.stop();
    const started = Date.now();
    const refused = await post(`${base}/v1/jobs`, { ...SETTINGS, seed: 1 });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("JSD_UNAVAILABLE");
    expect((await fetch(`${base}/sdapi/v1/progress`)).status).toBe(503);
    expect(Date.now() - started).toBeLessThan(5000);
    await redis.start(); // no persistence: an empty Redis (what waited is gone; see the README)
    for (const id of waiting) {
      const lost = await until(async () => {
        const r = await fetch(`${base}/v1/jobs/${id}`);
        const v = r.status === 200 ? ((await r.json()) as { status: string; error: { code: string; message: string } | null }) : undefined;
        return v?.status === "failed" ? v : undefined;
      }, 30_000);
      expect(lost.error).toMatchObject({ code: "JSD_UNAVAILABLE", message: expect.stringMatching(/lost/) });
    }
    const job = await until(async () => {
      const r = await post(`${base}/v1/jobs`, { ...SETTINGS, seed: 2 });
      return r.status === 202 ? ((await r.json()) as { id: string }) : undefined;
    }, 30_000);
    const done = await until(async () => {
      const v = (await (await fetch(`${base}/v1/jobs/${job.id}`)).json()) as { status: string; worker: string };
      return v.status === "done" ? v : undefined;
    }, 60_000);
    expect(done.worker).toBe("worker-b");
    expect(workers[1].child.exitCode).toBeNull();
  }, 120_000);

  it("worker SIGTERM: finishes the job it has, then exits 0", async () => {
    const w = workers[1];
    const job = (await (await post(`${base}/v1/jobs`, { ...SETTINGS, seed: 3, steps: 60 })).json()) as { id: string };
    await until(async () => (((await (await fetch(`${base}/v1/jobs/${job.id}`)).json()) as { step: number }).step >= 2 ? true : undefined), 60_000);
    w.child.kill("SIGTERM");
    expect(await w.exited).toBe(0);
    expect(((await (await fetch(`${base}/v1/jobs/${job.id}`)).json()) as { status: string }).status).toBe("done");
  }, 60_000);
});

describe.skipIf(!redisServer)("a queue on a Redis with persistence (appendonly yes)", () => {
  it("jobs waiting when Redis is killed are still there when it starts again on the same data, and run", async () => {
    const redis = await startRedis({ appendOnly: true });
    const server = await createServer({ port: 0, redis: redis.url });
    let worker: WorkerProcess | undefined;
    try {
      const base = await server.listen();
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push(((await (await post(`${base}/v1/jobs`, { ...SETTINGS, seed: 60 + i })).json()) as { id: string }).id);
      await new Promise((r) => setTimeout(r, 1500)); // appendfsync everysec: a second's writes may be lost on a kill
      await redis.stop();
      expect((await fetch(`${base}/v1/jobs/${ids[0]}`)).status).toBe(503);
      await redis.start();
      worker = startWorker(redis.url, "worker-c");
      const done = await until(async () => {
        const views = await Promise.all(ids.map(async (id) => (await (await fetch(`${base}/v1/jobs/${id}`)).json()) as { status: string; worker: string }));
        return views.every((v) => v.status === "done") ? views : undefined;
      }, 60_000);
      expect(done.map((v) => v.worker)).toEqual(["worker-c", "worker-c", "worker-c"]);
    } finally {
      worker?.child.kill("SIGKILL");
      await server.close();
      await redis.remove();
    }
  }, 90_000);
});

describe.skipIf(!redisServer)("BullMQ's attempts and backoff", () => {
  it("a failure of the machine (here: a results folder that cannot be made) is retried 3 times with backoff, then failed", async () => {
    const redis = await startRedis();
    const { createProducer, createWorker } = await import("../../lib/queue/index.js");
    const producer = createProducer({ redis: redis.url, queue: "retry" });
    const worker = await createWorker({ redis: redis.url, queue: "retry", name: "worker-r", resultsDir: "/dev/null/jsd-results", load: { threads: 1 } });
    try {
      const started = Date.now();
      const job = await producer.enqueue({ ...SETTINGS, steps: 2, seed: 1 });
      await expect(job.result()).rejects.toThrow(/ENOTDIR/);
      expect(Date.now() - started).toBeGreaterThan(3000); // backoff 1 s, then 2 s
      const { Queue } = await import("bullmq");
      const queue = new Queue("retry", { connection: { host: "127.0.0.1", port: redis.port } });
      expect((await queue.getJob(job.id))!.attemptsMade).toBe(3);
      await queue.close();
    } finally {
      await worker.close();
      await producer.close();
      await redis.remove();
    }
  }, 60_000);
});
