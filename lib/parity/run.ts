// Runs reference cases on a model and measures the error of each against the reference.
import { toFloat32, toInt32 } from "../formats/safetensors.js";
import type { Model, Shape4 } from "../model.js";
import type { CaseFile } from "./cases.js";
import { compareArrays, worst, type ErrorStats } from "./compare.js";
import { PIPELINE_TOLERANCES, runPipelineCase } from "./pipeline.js";
import { runSafetyCase } from "./safety.js";
import { runSchedulerCases, runTorchRngCase } from "./schedulers.js";
import { JsdError } from "../errors.js";

export interface CaseResult {
  name: string;
  kind: string;
  stats?: ErrorStats;
  /** Max abs error allowed. */
  tolerance?: number;
  status: "PASS" | "FAIL" | "SKIP";
  note?: string;
}

/** Max abs error allowed per kind for an f32 model on the CPU (issue #4's written tolerances). */
export const DEFAULT_TOLERANCES: Record<string, number> = {
  tokenizer: 0,
  text_encoder: 1e-4,
  unet: 1e-3,
  vae_decode: 2e-3,
  vae_encode: 1e-3,
  pipeline: PIPELINE_TOLERANCES.imageMax,
  torch_rng: 1e-6,
  // Each scheduler line decides its own pass (exact timesteps, relative sigmas and traces).
  schedulers: Infinity,
  // Each stage has its own tolerance (lib/parity/safety.ts): pixel values 1e-6, embeddings 1e-4,
  // cosines 1e-5, decisions and images exact.
  safety_checker: Infinity,
};

/** One line of a case's result; `skip` (a reason) reports the line as skipped. */
type Handler = (model: Model, c: CaseFile) => Promise<Array<{ name: string; stats?: ErrorStats; note?: string; pass?: boolean; skip?: string }>>;

function tensor(c: CaseFile, name: string): Float32Array {
  const t = c.tensors.get(name);
  if (!t) throw new JsdError("JSD_BAD_FILE", `${c.path} lacks tensor '${name}'`);
  return toFloat32(t);
}

function shape4(c: CaseFile, name: string): Shape4 {
  const s = c.tensors.get(name)?.shape;
  if (!s || s.length !== 4) throw new JsdError("JSD_BAD_FILE", `${c.path}: tensor '${name}' is not 4-D`);
  return s as Shape4;
}

const handlers: Record<string, Handler> = {
  async torch_rng(_model, c) {
    return runTorchRngCase(c);
  },
  async schedulers(_model, c) {
    return runSchedulerCases(c);
  },

  async safety_checker(model, c) {
    // A model converted without a checker (the embedded one, or --no-safety-checker) has nothing to compare.
    if (model.safetyChecker === null) return [{ name: c.name, skip: "the model has no safety checker: convert tiny-jsd with tiny-safety-checker laid over it" }];
    return runSafetyCase(model.safetyChecker, c);
  },

  async pipeline(model, c) {
    return [{ name: c.name, ...(await runPipelineCase(model, c)) }];
  },

  async tokenizer(model, c) {
    const json = c.json as { cases: Array<{ text: string; input_ids: number[]; n_tokens_before_padding: number; truncated: boolean }> };
    return json.cases.map((tc, i) => {
      const got = model.tokenize(tc.text);
      const stats = compareArrays(got.ids, tc.input_ids);
      const meta = got.length === tc.n_tokens_before_padding && got.truncated === tc.truncated;
      return { name: `${c.name}#${i}`, stats: meta ? stats : { ...stats, maxAbs: Math.max(stats.maxAbs, 1) } };
    });
  },

  async text_encoder(model, c) {
    const idsTensor = c.tensors.get("input_ids")!;
    const ids = toInt32(idsTensor);
    const out = await model.encodeText(ids, idsTensor.shape[0]);
    return [{ name: c.name, stats: compareArrays(out, tensor(c, "last_hidden_state")) }];
  },

  async unet(model, c) {
    const out = await model.predictNoise({
      latents: tensor(c, "sample"),
      shape: shape4(c, "sample"),
      timesteps: tensor(c, "timestep"),
      textStates: tensor(c, "encoder_hidden_states"),
    });
    return [{ name: c.name, stats: compareArrays(out, tensor(c, "out")) }];
  },

  async vae_decode(model, c) {
    const out = await model.decodeLatents(tensor(c, "z"), shape4(c, "z"));
    return [{ name: c.name, stats: compareArrays(out, tensor(c, "image")) }];
  },

  async vae_encode(model, c) {
    const { mean, logvar } = await model.encodeImage(tensor(c, "image"), shape4(c, "image"));
    const stats = worst([compareArrays(mean, tensor(c, "mean")), compareArrays(logvar, tensor(c, "logvar"))]);
    return [{ name: c.name, stats }];
  },
};

/** Kinds this runner can check. Others are reported as skipped. */
export function handledKinds(): string[] {
  return Object.keys(handlers);
}

export async function runCases(model: Model, cases: CaseFile[], tolerances: Record<string, number> = {}): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const c of cases) {
    const handler = handlers[c.kind];
    if (!handler) {
      results.push({ name: c.name, kind: c.kind, status: "SKIP", note: "kind not handled yet" });
      continue;
    }
    const tolerance = tolerances[c.kind] ?? DEFAULT_TOLERANCES[c.kind] ?? 0;
    try {
      for (const r of await handler(model, c)) {
        if (r.skip !== undefined || r.stats === undefined) {
          results.push({ name: r.name, kind: c.kind, status: "SKIP", note: r.skip ?? "no figures" });
          continue;
        }
        results.push({ name: r.name, kind: c.kind, stats: r.stats, tolerance, status: (r.pass ?? true) && r.stats.maxAbs <= tolerance ? "PASS" : "FAIL", note: r.note });
      }
    } catch (error) {
      results.push({ name: c.name, kind: c.kind, tolerance, status: "FAIL", note: (error as Error).message });
    }
  }
  return results;
}

export function formatResult(r: CaseResult): string {
  const num = (x: number | undefined) => (x === undefined ? "-" : x.toExponential(2));
  const cols = [r.name.padEnd(40), r.kind.padEnd(12), `abs ${num(r.stats?.maxAbs)}`, `rel ${num(r.stats?.maxRel)}`, `tol ${r.tolerance === Infinity ? "per line" : num(r.tolerance)}`, r.status];
  return cols.join("  ") + (r.note ? `  (${r.note})` : "");
}

export function summary(results: CaseResult[]): string {
  const count = (s: CaseResult["status"]) => results.filter((r) => r.status === s).length;
  const skipped = count("SKIP");
  return `${count("PASS")} passed, ${count("FAIL")} failed` + (skipped ? `, ${skipped} skipped` : "");
}
