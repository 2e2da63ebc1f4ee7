// One interface over the weight files a diffusers folder may hold (safetensors, PyTorch
// zip pickles), so the converter streams tensors the same way from either.
import { extname } from "node:path";
import { JsdError } from "../errors.js";
import type { CheckpointReader, TensorInfo } from "./checkpoint-reader.js";
import { SafetensorsFile, type RawTensor, type SafetensorsDtype } from "./safetensors.js";

export type { CheckpointReader, TensorInfo } from "./checkpoint-reader.js";

class SafetensorsCheckpoint implements CheckpointReader {
  constructor(private readonly file: SafetensorsFile) {}
  get path(): string {
    return this.file.path;
  }
  names(): string[] {
    return this.file.names();
  }
  info(name: string): TensorInfo {
    const entry = this.file.entries.get(name);
    if (!entry) throw new JsdError("JSD_BAD_FILE", `${this.file.path} has no tensor '${name}'`);
    return { dtype: entry.dtype, shape: entry.shape };
  }
  read(name: string): Promise<RawTensor> {
    return this.file.read(name);
  }
  close(): Promise<void> {
    return this.file.close();
  }
}

type Opener = (path: string) => Promise<CheckpointReader>;

const openers = new Map<string, Opener>([
  [".safetensors", async (path) => new SafetensorsCheckpoint(await SafetensorsFile.open(path))],
  // PyTorch zip checkpoints (torch.save >= 1.6), read as data, never executed: see torch-checkpoint.ts.
  ...[".bin", ".ckpt", ".pt", ".pth"].map((ext): [string, Opener] => [ext, async (path) => (await import("./torch-checkpoint.js")).openTorchCheckpoint(path)]),
]);

export async function openCheckpoint(path: string): Promise<CheckpointReader> {
  const opener = openers.get(extname(path).toLowerCase());
  if (!opener) {
    throw new JsdError("JSD_BAD_FILE", `${path}: unsupported weight file type '${extname(path)}' (expected ${[...openers.keys()].join(", ")})`);
  }
  return opener(path);
}
