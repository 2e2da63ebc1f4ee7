// The model-loading flags that `jsd generate` and `jsd serve` share, and what they mean to loadModel().
import { type Command, Option } from "commander";
import { BACKENDS, type BackendName, type LoadModelOptions } from "../model.js";
import { LIMITS } from "../limits.js";
import { intOption } from "./io.js";

export interface LoadFlags {
  model?: string;
  threads?: number;
  backend: BackendName;
  device?: number;
  lowMemory: boolean;
}

export function addLoadOptions(command: Command): Command {
  return command
    .option("-m, --model <file.gguf>", "model file from `jsd convert` (default: the embedded tiny-jsd-shapes model)")
    .option("--threads <n>", "compute threads (default: physical cores)", intOption("--threads", 1, LIMITS.threadsMax))
    .addOption(new Option("--backend <name>", "compute backend; auto picks a GPU when this build has one").choices([...BACKENDS]).default("auto"))
    .option("--device <n>", "device index within the backend (jsd doctor lists them)", intOption("--device", 0, LIMITS.devicesMax))
    .option("--low-memory", "keep only the network in use resident (loadModel's releaseIdleWeights)", false);
}

export function loadOptionsOf(flags: LoadFlags): LoadModelOptions {
  return { threads: flags.threads, backend: flags.backend, device: flags.device, releaseIdleWeights: flags.lowMemory };
}
