import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // test/unit, native, pipeline, server, packaging, gpu (README, "Set-up"); `npm run test:unit` is the
    // quick loop that needs no addon and no build.
    include: ["test/**/*.test.ts"],
    // Native work is CPU-bound and CI has two cores: keep files from competing for them.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
