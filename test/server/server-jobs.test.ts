// The job queue on its own (lib/server/jobs.ts), with a stand-in for generate(): order, seeds,
// cancel/interrupt/skip, the queue limit, and how long finished jobs are kept.
import { describe, expect, it } from "vitest";
import type { GeneratedImage } from "../../lib/pipeline/generate.js";
import type { GenerateOptions } from "../../lib/pipeline/options.js";
import { ServerError } from "../../lib/server/errors.js";
import { JobQueue, type Job, type JobRequest } from "../../lib/server/jobs.js";
import { DEFAULT_LIMITS } from "../../lib/server/limits.js";

/** A generate() that takes `steps` ticks of 1 ms, honours signal and interrupt, and records its calls. */
function fakeRunner(pngBytes = 10) {
  const calls: GenerateOptions[] = [];
  const run = async (o: GenerateOptions): Promise<GeneratedImage[]> => {
    calls.push(o);
    const steps = o.steps ?? 5;
    let done = 0;
    for (; done < steps; done++) {
      if (o.signal?.aborted) throw new DOMException("aborted", "AbortError");
      if (o.interrupt?.aborted) break;
      await new Promise((r) => setTimeout(r, 1));
      o.onProgress?.({ step: done + 1, totalSteps: steps, elapsedMs: 0, batch: 0 });
    }
    return [{ png: new Uint8Array(pngBytes), rgba: new Uint8Array(4), width: 1, height: 1, seed: o.seed!, batchIndex: 0, droppedTokens: 0, promptMode: "reference", parameters: {} as GeneratedImage["parameters"], peakComputeBytes: 0, stepsDone: done }];
  };
  return { run, calls };
}

const request = (images = 1, steps = 5, seed = 10n): JobRequest => ({ options: { prompt: "p", steps }, seed, images });
const finished = (job: Job) => new Promise<void>((resolve) => (job.finished ? resolve() : job.on("event", (e) => e.type === "finished" && resolve())));
const limits = (over: Partial<typeof DEFAULT_LIMITS> = {}) => ({ ...DEFAULT_LIMITS, ...over });

describe("JobQueue", () => {
  it("runs jobs one at a time in arrival order, image i with seed + i", async () => {
    const { run, calls } = fakeRunner();
    const queue = new JobQueue({ run, limits: limits(), previewEvery: 0 });
    const a = queue.submit(request(2, 3, 100n));
    const b = queue.submit(request(1, 3, 7n));
    expect([queue.position(a), queue.position(b)]).toEqual([0, 1]);
    await finished(b);
    expect(calls.map((c) => c.seed)).toEqual([100n, 101n, 7n]);
    expect(a.images.map((i) => i.seed)).toEqual(["100", "101"]);
    expect([a.status, b.status]).toEqual(["done", "done"]);
    await queue.close(true);
  });

  it("refuses past maxQueue waiting jobs with JSD_QUEUE_FULL and a Retry-After", async () => {
    const { run } = fakeRunner();
    const queue = new JobQueue({ run, limits: limits({ maxQueue: 1 }), previewEvery: 0 });
    queue.submit(request(1, 50));
    queue.submit(request(1, 50));
    let error: unknown;
    try {
      queue.submit(request());
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ServerError);
    expect((error as ServerError).code).toBe("JSD_QUEUE_FULL");
    expect(Number((error as ServerError).headers["retry-after"])).toBeGreaterThan(0);
    await queue.close(true);
  });

  it("cancel: a waiting job never runs, a running one stops without images", async () => {
    const { run, calls } = fakeRunner();
    const queue = new JobQueue({ run, limits: limits(), previewEvery: 0 });
    const running = queue.submit(request(3, 200));
    const waiting = queue.submit(request());
    await new Promise((r) => setTimeout(r, 20));
    expect(queue.cancel(waiting)).toBe(true);
    expect(queue.cancel(running)).toBe(true);
    await finished(running);
    expect([running.status, waiting.status, running.images.length, calls.length]).toEqual(["cancelled", "cancelled", 0, 1]);
    expect(queue.cancel(running)).toBe(false);
    await queue.close(true);
  });

  it("interrupt ends the job with the image in progress; skip ends only that image", async () => {
    const { run } = fakeRunner();
    const queue = new JobQueue({ run, limits: limits(), previewEvery: 0 });
    const skipped = queue.submit(request(2, 100));
    await new Promise((r) => setTimeout(r, 20));
    queue.skip();
    await new Promise((r) => setTimeout(r, 20));
    queue.interrupt();
    await finished(skipped);
    expect(skipped.status).toBe("done");
    expect(skipped.interrupted).toBe(true);
    expect(skipped.images).toHaveLength(2);
    expect(skipped.images.every((i) => i.stepsDone > 0 && i.stepsDone < 100)).toBe(true);
    await queue.close(true);
  });

  it("keeps finished jobs within the count, age and bytes limits", async () => {
    let now = 1_000_000;
    const { run } = fakeRunner(100);
    const queue = new JobQueue({ run, limits: limits({ keepJobs: 2, keepJobsMs: 1000, keepBytes: 250 }), previewEvery: 0, now: () => now });
    const jobs: Job[] = [];
    for (let i = 0; i < 3; i++) {
      jobs.push(queue.submit(request(1, 1)));
      await finished(jobs[i]);
    }
    expect(jobs.map((j) => queue.get(j.id) !== undefined)).toEqual([false, true, true]); // count: 2
    const big = queue.submit(request(2, 1)); // 200 bytes: with one 100-byte job over 250
    await finished(big);
    expect([jobs[2], big].map((j) => queue.get(j.id) !== undefined)).toEqual([false, true]);
    now += 1001;
    expect(queue.get(big.id)).toBeUndefined(); // age
    await queue.close(true);
  });

  it("close() cancels the waiting jobs and refuses new ones", async () => {
    const { run } = fakeRunner();
    const queue = new JobQueue({ run, limits: limits(), previewEvery: 0 });
    const running = queue.submit(request(1, 30));
    const waiting = queue.submit(request());
    await queue.close(false);
    expect([running.status, waiting.status]).toEqual(["done", "cancelled"]);
    expect(() => queue.submit(request())).toThrow(/shutting down/);
  });
});
