// Scheduler and random-number reference cases: pure TS, no model needed.
import { toFloat32 } from "../formats/safetensors.js";
import { TorchGenerator } from "../rng/torch-generator.js";
import { createScheduler, SCHEDULER_CLASS_NAMES, type SchedulerName } from "../schedulers/index.js";
import type { CaseFile } from "./cases.js";
import { compareArrays, worst, type ErrorStats } from "./compare.js";
import { JsdError } from "../errors.js";

interface RngCases {
  cases: Array<{ name: string; seed: number | string; calls: Array<{ shape: number[]; tensor: string }> }>;
}

interface SchedulerCases {
  trace_definition: { gen_seed: number };
  schedulers: Record<
    string,
    {
      class: string;
      config: Record<string, unknown>;
      eta?: number;
      set_timesteps?: Record<string, { timesteps: number[]; sigmas: number[] | null; init_noise_sigma: number }>;
      traces: Array<{ num_inference_steps: number; timesteps: number[]; tensor_prefix: string; steps: number }>;
      add_noise?: Array<{ num_inference_steps: number; timestep: number; tensor: string }>;
    }
  >;
}

type Line = { name: string; stats: ErrorStats; note?: string; pass?: boolean };

function tensorOf(c: CaseFile, name: string): Float32Array {
  const t = c.tensors.get(name);
  if (!t) throw new JsdError("JSD_BAD_FILE", `${c.path} lacks tensor '${name}'`);
  return toFloat32(t);
}

export function runTorchRngCase(c: CaseFile): Line[] {
  const json = c.json as RngCases;
  return json.cases.map((rc) => {
    const generator = new TorchGenerator(BigInt(rc.seed));
    const stats = worst(rc.calls.map((call) => compareArrays(generator.randn(call.shape), tensorOf(c, call.tensor))));
    return { name: `torch_rng/${rc.name}`, stats };
  });
}

function schedulerName(className: string): SchedulerName {
  const found = Object.entries(SCHEDULER_CLASS_NAMES).find(([, cls]) => cls === className);
  if (!found) throw new JsdError("JSD_BAD_FILE", `no scheduler for ${className}`);
  return found[0] as SchedulerName;
}

export function runSchedulerCases(c: CaseFile): Line[] {
  const json = c.json as SchedulerCases;
  const lines: Line[] = [];
  for (const [entry, s] of Object.entries(json.schedulers)) {
    const name = schedulerName(s.class);
    const options = { eta: s.eta };
    for (const [n, expected] of Object.entries(s.set_timesteps ?? {})) {
      const scheduler = createScheduler(name, s.config, Number(n), options);
      const stats = worst([
        compareArrays(scheduler.timesteps, expected.timesteps),
        ...(expected.sigmas ? [compareArrays(scheduler.sigmas ?? [], expected.sigmas)] : []),
        compareArrays([scheduler.initNoiseSigma], [expected.init_noise_sigma]),
      ]);
      // Timesteps must be exact; sigmas to 1e-6 relative (issue #5).
      lines.push({ name: `${entry}/set_timesteps(${n})`, stats, note: "timesteps exact, sigmas rel <= 1e-6", pass: stats.maxRel <= 1e-6 && compareArrays(scheduler.timesteps, expected.timesteps).maxAbs === 0 });
    }
    for (const trace of s.traces) {
      const scheduler = createScheduler(name, s.config, trace.num_inference_steps, options);
      const generator = new TorchGenerator(json.trace_definition.gen_seed);
      const p = trace.tensor_prefix;
      const outputs = tensorOf(c, `${p}model_output`);
      const scaledRef = tensorOf(c, `${p}scaled_input`);
      const prevRef = tensorOf(c, `${p}prev_sample`);
      let sample = tensorOf(c, `${p}initial_sample`);
      const size = sample.length;
      const stats: ErrorStats[] = [];
      for (let i = 0; i < trace.steps; i++) {
        const t = scheduler.timesteps[i];
        stats.push(compareArrays(scheduler.scaleModelInput(sample, t), scaledRef.subarray(i * size, (i + 1) * size)));
        sample = scheduler.step(outputs.subarray(i * size, (i + 1) * size), t, sample, scheduler.acceptsGenerator ? generator : undefined);
        stats.push(compareArrays(sample, prevRef.subarray(i * size, (i + 1) * size)));
      }
      const w = worst(stats);
      // Step traces to 1e-5, relative to the values' magnitude when they exceed 1.
      lines.push({ name: `${entry}/trace(${trace.num_inference_steps})`, stats: w, note: "abs <= 1e-5 (relative above 1)", pass: w.maxAbs <= 1e-5 * Math.max(1, w.maxAbs / Math.max(w.maxRel, 1e-30)) });
    }
    for (const a of s.add_noise ?? []) {
      const scheduler = createScheduler(name, s.config, a.num_inference_steps, options);
      const out = scheduler.addNoise(tensorOf(c, `${entry}.add_noise.original`), tensorOf(c, `${entry}.add_noise.noise`), a.timestep);
      const stats = compareArrays(out, tensorOf(c, a.tensor));
      lines.push({ name: `${entry}/add_noise(t=${a.timestep})`, stats, note: "rel <= 1e-5", pass: stats.maxRel <= 1e-5 });
    }
  }
  return lines;
}
