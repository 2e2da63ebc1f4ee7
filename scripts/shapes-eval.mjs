#!/usr/bin/env node
// Semantic evaluation of a model on the held-out shape prompts: generates one image per prompt
// (its own seed; 64×64, PNDM 20 steps, guidance 7.5), judges it with the public pixel rules
// (dist/eval/shape-judge.js, the same judge as test/pipeline/shapes-e2e.test.ts) and prints per-prompt
// results and the accuracy table.
//
//   node scripts/shapes-eval.mjs [model.gguf] [--json] [--prompts file.json] [--threads N]
//
// Default model: the embedded models/tiny-jsd-shapes.gguf. Default prompts:
// test/fixtures/shapes-prompts-public.json. Needs the compiled dist/ (npm run build:ts).
// Exit status: 0 when it ran (whatever the accuracy), 2 on bad arguments. With the tiny embedded
// model, --threads 1 is fastest on a busy machine (its graphs are too small to share).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadModel } from "../dist/index.js";
import { accuracy, evaluatePrompts, formatAccuracyTable } from "../dist/eval/shape-judge.js";

const usage = "usage: node scripts/shapes-eval.mjs [model.gguf] [--json] [--prompts file.json] [--threads N]";

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      json: { type: "boolean", default: false },
      prompts: { type: "string" },
      threads: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
} catch (error) {
  console.error(`${error.message}\n${usage}`);
  process.exit(2);
}
const { values, positionals } = args;
if (values.help) {
  console.log(usage);
  process.exit(0);
}
if (positionals.length > 1) {
  console.error(usage);
  process.exit(2);
}
const threads = values.threads === undefined ? undefined : Number(values.threads);
if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) {
  console.error(`bad --threads '${values.threads}'\n${usage}`);
  process.exit(2);
}

const promptsPath = values.prompts ?? new URL("../test/fixtures/shapes-prompts-public.json", import.meta.url);
const file = JSON.parse(readFileSync(promptsPath, "utf8"));
const prompts = file.prompts;
if (!Array.isArray(prompts) || prompts.length === 0) {
  console.error(`no prompts in ${promptsPath}`);
  process.exit(2);
}

const started = performance.now();
const model = await loadModel(positionals[0], threads === undefined ? undefined : { threads });
const mark = (v) => (v === null ? "-" : v ? "ok" : "NO");
let results;
try {
  results = await evaluatePrompts(model, prompts, (r) => {
    if (values.json) return;
    const j = r.judgement, s = r.score;
    const ref = r.matchesReference === null ? "" : r.matchesReference ? "  ref same" : "  ref DIFF";
    console.log(
      `${r.id.padEnd(7)} fg ${j.fg.padEnd(7)} ${mark(s.fg).padEnd(2)}  bg ${j.bg.padEnd(7)} ${mark(s.bg).padEnd(2)}  ` +
        `shape ${j.shape.padEnd(8)} ${mark(s.shape).padEnd(2)}${ref}  ${(r.ms / 1000).toFixed(1)}s  ${r.prompt}`,
    );
  });
} finally {
  await model.close();
}
const seconds = (performance.now() - started) / 1000;

const measured = accuracy(results.map((r) => r.score));
const withReference = results.filter((r) => r.matchesReference !== null);
const agreement = withReference.length ? { same: withReference.filter((r) => r.matchesReference).length, of: withReference.length } : null;
const ref = file.rules?.reference_accuracy;
const refRow = ref ? { fg: ref.fg_color, bg: ref.bg_color, shape: ref.shape, all: ref.all_attributes } : undefined;

if (values.json) {
  console.log(
    JSON.stringify(
      {
        model: model.path,
        prompts: String(promptsPath instanceof URL ? promptsPath.pathname : promptsPath),
        accuracy: measured,
        reference_accuracy: refRow ?? null,
        reference_agreement: agreement,
        seconds,
        results: results.map((r) => ({
          id: r.id,
          prompt: r.prompt,
          seed: r.seed,
          category: r.category,
          expect: r.expect,
          result: { fg: r.judgement.fg, bg: r.judgement.bg, shape: r.judgement.shape },
          metrics: r.judgement.metrics,
          frame_shares: r.judgement.frameShares,
          score: r.score,
          matches_reference: r.matchesReference,
          ms: Math.round(r.ms),
        })),
      },
      null,
      2,
    ),
  );
} else {
  console.log(`\nmodel ${model.path}, ${results.length} prompts, ${seconds.toFixed(1)} s`);
  console.log(formatAccuracyTable(measured, refRow));
  if (agreement) console.log(`same (fg, bg, shape) as reference_result: ${agreement.same}/${agreement.of}`);
}
