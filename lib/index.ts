export { JsdError, isJsdError, type JsdErrorCode } from "./errors.js";
export { systemInfo, listDevices, version, type SystemInfo, type DeviceInfo, type BinaryInfo } from "./system-info.js";
export { SentencePieceModel, type SentencePieceEncoding } from "./prompt/sentencepiece.js";
export { loadModel, planModel, Model, DEFAULT_MODEL_PATH, BACKENDS, type Placement, type BackendName, type LoadModelOptions, type PredictNoiseInput, type EncodedImage, type Shape4, type ModelSafetyChecker } from "./model.js";
export type { GenerateOptions, GenerateProgress, ImageInput } from "./pipeline/options.js";
export { latentsToPreview, SD_V1_LATENT_RGB_FACTORS, type LatentPreview } from "./pipeline/preview.js";
export type { GeneratedImage } from "./pipeline/generate.js";
export type { GenerationParameters } from "./pipeline/parameters.js";
export { JsdTokenizer, type TokenizedPrompt, type TokenizerConfig } from "./prompt/tokenizer.js";
export { TorchGenerator } from "./rng/torch-generator.js";
export { createScheduler, SCHEDULER_NAMES, type Scheduler, type SchedulerName } from "./schedulers/index.js";
export { readPngText, decodeImage, encodePng } from "./image/png.js";
export { convert, OUTPUT_TYPES, type ConvertOptions, type ConvertProgress, type ConvertResult } from "./convert/index.js";
export { GgufFile } from "./formats/gguf-reader.js";
export {
  parsePrompt,
  formatTokenListing,
  PROMPT_MODES,
  type PromptMode,
  type PromptTokens,
  type ExtendedPromptTokens,
  type ReferencePromptTokens,
  type PromptPart,
} from "./prompt/index.js";
