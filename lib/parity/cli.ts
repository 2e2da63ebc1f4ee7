#!/usr/bin/env node
// npm run --silent parity -- --model <file.gguf> --cases <folder-or-file> [--tolerance kind=value ...] [--threads N]
//   [--backend cpu|cuda|vulkan|metal|auto]
// Prints one line per case and ends with "N passed, M failed"; exits 0 only when nothing failed.
import { parseArgs } from "node:util";
import { loadModel, type LoadModelOptions } from "../model.js";
import { readCases } from "./cases.js";
import { formatResult, runCases, summary } from "./run.js";

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      model: { type: "string" },
      cases: { type: "string" },
      tolerance: { type: "string", multiple: true },
      threads: { type: "string" },
      backend: { type: "string" },
      json: { type: "boolean" },
    },
  });
  if (!values.model || !values.cases) {
    console.error("usage: parity --model <file.gguf> --cases <folder-or-file> [--tolerance kind=value ...] [--threads N] [--backend name] [--json]");
    return 2;
  }
  const tolerances: Record<string, number> = {};
  for (const t of values.tolerance ?? []) {
    const [kind, value] = t.split("=");
    if (!kind || !(Number(value) >= 0)) {
      console.error(`bad --tolerance '${t}' (expected kind=value)`);
      return 2;
    }
    tolerances[kind] = Number(value);
  }
  const model = await loadModel(values.model, {
    ...(values.threads ? { threads: Number(values.threads) } : {}),
    ...(values.backend ? { backend: values.backend as LoadModelOptions["backend"] } : {}),
  });
  try {
    const results = await runCases(model, await readCases(values.cases), tolerances);
    for (const r of results) console.log(values.json ? JSON.stringify(r) : formatResult(r));
    console.log(summary(results));
    return results.some((r) => r.status === "FAIL") ? 1 : 0;
  } finally {
    await model.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`parity: ${(error as Error).message}`);
    process.exit(2);
  },
);
