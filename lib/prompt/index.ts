// Prompt handling of "extended" prompt mode: syntax, chunked tokens, emphasis, text states.
export { parsePrompt, promptPlainText, splitAtBreaks, ROUND_MULTIPLIER, SQUARE_MULTIPLIER, type PromptPart } from "./parse.js";
export {
  tokenizeExtended,
  tokenizeReference,
  tokenizePrompt,
  tokenizeSegment,
  chunkTokens,
  padChunks,
  COMMA_BACKTRACK,
  PROMPT_MODES,
  type PromptMode,
  type PromptTokens,
  type ExtendedPromptTokens,
  type ReferencePromptTokens,
  type PromptChunk,
  type ChunkEnd,
  type WeightedToken,
  type TokenizeOptions,
} from "./tokens.js";
export { applyEmphasis } from "./emphasis.js";
export { encodeExtendedPrompts, MAX_PROMPT_CHUNKS, type ExtendedTextStates } from "./encode.js";
export { formatTokenListing, displayWidth, type TokenListingOptions } from "./format.js";
