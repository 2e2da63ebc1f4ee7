export { JsdError, isJsdError, type JsdErrorCode } from "./errors.js";
export { systemInfo, version, type SystemInfo } from "./system-info.js";
export { SentencePieceModel, type SentencePieceEncoding } from "./sentencepiece.js";
