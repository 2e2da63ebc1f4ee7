import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const script = new URL("../../scripts/fetch-ggml.mjs", import.meta.url).pathname;
// A registry address nothing listens on: any network use fails at once.
const offline = { ...process.env, npm_config_registry: "http://127.0.0.1:9/", npm_config_fetch_retries: "0" };

describe("scripts/fetch-ggml.mjs", () => {
  it("reuses the cache without touching the network", () => {
    const started = Date.now();
    const dir = execFileSync(process.execPath, [script], { env: offline, encoding: "utf8" }).trim();
    expect(dir).toMatch(/ggml$/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("fails with a clear message when the registry cannot be reached", () => {
    const cache = mkdtempSync(join(tmpdir(), "jsd-ggml-cache-"));
    const result = spawnSync(process.execPath, [script], { env: { ...offline, JSD_GGML_CACHE: cache }, encoding: "utf8", timeout: 60_000 });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/could not download node-llama-cpp@3\.21\.1 from the npm registry/);
  });
});
