// loadModel()'s options, checked and turned into the addon's: one place for both loadModel() and
// planModel(), which must decide alike. "auto" is resolved here by the backend table's one rule,
// and names cross into native code as ggml's registry names.
import { autoBackend, BACKEND_NAMES, nativeBackendName, type Backend } from "./native/backends.js";
import { JsdError, JsdRangeError } from "./errors.js";
import { optionalBoolean, optionsObject } from "./validate.js";
import { LIMITS } from "./limits.js";
import type { NativeLoadOptions } from "./native/addon.js";
import { DEFAULT_VAE_TILING, VAE_TILING_THRESHOLD } from "./pipeline/vae-tiles.js";
import { listDevices } from "./system-info.js";

export type BackendName = "auto" | Backend;
export const BACKENDS: readonly BackendName[] = ["auto", ...BACKEND_NAMES];

export interface LoadModelOptions {
  /**
   * Where to compute. "auto" (default): the first GPU backend with a device (CUDA, Metal, Vulkan),
   * else the CPU; when the UNet does not fit the GPU's memory, the CPU. A named backend that is
   * absent is an error (JSD_INVALID_ARGUMENT), never a silent CPU run.
   */
  backend?: BackendName;
  /** Device index among the backend's devices (listDevices()). Default 0. */
  device?: number;
  /** Compute threads. Default: the machine's physical core count. */
  threads?: number;
  /** Recompute the file's SHA-256 and compare it with the one the converter stored (reads the whole file once). Default false. */
  verify?: boolean;
  /** Use ggml's fused flash attention in the UNet and VAE (faster on some machines, f16 rounding). Default false. */
  flashAttention?: boolean;
  /**
   * Keep the text encoder on the CPU when the backend is a GPU: its weights (112 MiB at q8_0 for
   * JSD's size) and compute buffer take no GPU memory; it runs once per prompt. No effect on the CPU. Default false.
   */
  textEncoderOnCpu?: boolean;
  /**
   * Keep the VAE on the CPU when the backend is a GPU: its weights and its large decode buffer
   * take no GPU memory; it runs once per image. No effect on the CPU. Default false.
   */
  vaeOnCpu?: boolean;
  /**
   * Keep only the network in use resident: the pages of the memory-mapped model file that hold
   * the other networks' weights are dropped from this process's memory (the text encoder after
   * each encoding, the UNet while the VAE decodes, the VAE while the UNet runs) and mapped again
   * from the page cache when next needed. Lowers a run's peak RSS (a 512x512 txt2img with q8_0
   * weights: 1186 MiB instead of 1521), at the cost of those page faults each run. Applies to
   * weights read in place (CPU; q4_0/q4_K UNet weights are repacked copies); default false.
   */
  releaseIdleWeights?: boolean;
  /**
   * On a GPU: the most device memory (bytes) the model may use. Default: the device's free memory.
   * The networks are placed before loading (see Model.placement): where they do not fit, the VAE
   * and then the text encoder run on the CPU, and a UNet that does not fit is refused (JSD_OOM).
   */
  deviceMemoryLimit?: number;
  /** The largest image the memory plan makes room for (pixels). Default: the model's own size (512 for JSD). */
  plannedSize?: { width: number; height: number };
}

/** Checks loadModel()'s options (TypeError/RangeError/JSD_INVALID_ARGUMENT) and returns the addon's. */
export function nativeLoadOptions(options: LoadModelOptions): NativeLoadOptions {
  optionsObject("options", options);
  const { threads, flashAttention, textEncoderOnCpu, vaeOnCpu, releaseIdleWeights, deviceMemoryLimit, plannedSize } = options;
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 1 || threads > LIMITS.threadsMax)) {
    throw new JsdRangeError(`threads must be an integer from 1 to ${LIMITS.threadsMax}`);
  }
  for (const name of ["flashAttention", "verify", "textEncoderOnCpu", "vaeOnCpu", "releaseIdleWeights"] as const) optionalBoolean(name, options[name]);
  if (deviceMemoryLimit !== undefined && (!Number.isSafeInteger(deviceMemoryLimit) || deviceMemoryLimit < 1)) {
    throw new JsdRangeError("deviceMemoryLimit must be a positive integer (bytes)");
  }
  if (plannedSize !== undefined) {
    const ok = (v: unknown) => Number.isInteger(v) && (v as number) >= 8 && (v as number) <= LIMITS.imageSideMax;
    if (plannedSize === null || typeof plannedSize !== "object" || !ok(plannedSize.width) || !ok(plannedSize.height)) {
      throw new JsdRangeError(`plannedSize must be { width, height } with integers from 8 to ${LIMITS.imageSideMax}`);
    }
  }
  const requested = options.backend ?? "auto";
  if (!BACKENDS.includes(requested)) throw new JsdRangeError(`backend must be one of ${BACKENDS.join(", ")}, got ${String(requested)}`);
  const device = options.device ?? 0;
  if (!Number.isInteger(device) || device < 0 || device > LIMITS.devicesMax) throw new JsdRangeError(`device must be an integer from 0 to ${LIMITS.devicesMax}`);
  const devices = listDevices();
  if (requested !== "auto" && !devices.some((d) => d.backend === requested)) {
    const available = [...new Set(devices.map((d) => d.backend))].join(", ");
    throw new JsdError(
      "JSD_INVALID_ARGUMENT",
      `backend '${requested}' is not available on this machine (available: ${available}); \`npx jsd doctor\` shows which GPU plugins were found and why any was not loaded`,
    );
  }
  return {
    threads,
    flashAttention,
    backend: nativeBackendName(requested === "auto" ? autoBackend(devices) : requested),
    device,
    textEncoderOnCpu,
    vaeOnCpu,
    releaseIdleWeights,
    cpuFallback: requested === "auto",
    deviceMemoryLimit,
    planWidth: plannedSize?.width,
    planHeight: plannedSize?.height,
    // generate()'s default VAE tiling ("auto"), so that the plan holds one tile's decode buffer.
    vaeTile: DEFAULT_VAE_TILING.tile,
    vaeTileThreshold: VAE_TILING_THRESHOLD,
  };
}
