// The interface every weight-file reader implements (safetensors, PyTorch zip pickles): its own
// module, so that the readers and the dispatcher (checkpoint.ts) do not import each other.
import type { RawTensor, SafetensorsDtype } from "./safetensors.js";

export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
}

export interface CheckpointReader {
  readonly path: string;
  /** Tensor names in file order. */
  names(): string[];
  info(name: string): TensorInfo;
  /** Reads one tensor's raw little-endian bytes. Only that tensor is held in memory. */
  read(name: string): Promise<RawTensor>;
  close(): Promise<void>;
}
