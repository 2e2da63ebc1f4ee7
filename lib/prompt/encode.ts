// Text states for "extended" prompt mode: the prompt (and the negative prompt) tokenized into
// chunks of 77 ids, every chunk through the text encoder (all in one batch), emphasis applied
// per chunk, and the chunks of a prompt concatenated along the sequence axis: [chunks × 77,
// hidden]. The positive and negative prompts are padded to the same number of chunks with
// empty chunks (the encoding of ""), so that both halves of the guided batch have one length.
import { JsdError } from "../errors.js";
import type { DiffusionModel } from "../pipeline/model-port.js";
import { LIMITS } from "../limits.js";
import { applyEmphasis } from "./emphasis.js";
import { padChunks, tokenizeExtended, type ExtendedPromptTokens } from "./tokens.js";

/** The most chunks a prompt may take (the package's limit, which the engine checks text lengths against). */
export const MAX_PROMPT_CHUNKS = LIMITS.promptChunksMax;

export interface ExtendedTextStates {
  cond: ExtendedPromptTokens;
  /** The negative prompt's tokens (only when one was given), padded to cond's chunk count. */
  uncond?: ExtendedPromptTokens;
  /** [chunks × maxLength, hidden], flattened. */
  condStates: Float32Array;
  uncondStates?: Float32Array;
  /** Chunks per prompt (the same for both). */
  chunks: number;
  /** Sequence length of the states: chunks × maxLength. */
  length: number;
}

/**
 * Encodes a prompt, and optionally a negative prompt, in extended mode. The chunks of both go
 * through `model.encodeText` as one batch.
 */
export async function encodeExtendedPrompts(model: DiffusionModel, prompt: string, negativePrompt?: string): Promise<ExtendedTextStates> {
  const tokenizer = model.tokenizer;
  let cond = tokenizeExtended(tokenizer, prompt);
  let uncond = negativePrompt === undefined ? undefined : tokenizeExtended(tokenizer, negativePrompt);
  const chunks = Math.max(cond.chunks.length, uncond?.chunks.length ?? 0);
  if (chunks > MAX_PROMPT_CHUNKS) {
    const which = cond.chunks.length >= (uncond?.chunks.length ?? 0) ? "prompt" : "negativePrompt";
    const n = which === "prompt" ? cond.count : uncond!.count;
    throw new JsdError(
      "JSD_INVALID_ARGUMENT",
      `${which} is too long: ${n} tokens in ${chunks} chunks; extended prompt mode takes at most ${MAX_PROMPT_CHUNKS} chunks of ${cond.chunkLength} tokens`,
    );
  }
  cond = padChunks(tokenizer, cond, chunks);
  if (uncond) uncond = padChunks(tokenizer, uncond, chunks);

  const ids = new Int32Array((uncond ? 2 : 1) * cond.ids.length);
  if (uncond) ids.set(uncond.ids);
  ids.set(cond.ids, uncond ? uncond.ids.length : 0);
  const seqLength = tokenizer.config.maxLength;
  const hidden = model.textHiddenSize;
  const states = await model.encodeText(ids, ids.length / seqLength);
  const per = cond.ids.length * hidden;
  const condStates = applyEmphasis(states.slice(uncond ? per : 0, uncond ? 2 * per : per), cond.weights, seqLength, hidden);
  const uncondStates = uncond ? applyEmphasis(states.slice(0, per), uncond.weights, seqLength, hidden) : undefined;
  return { cond, uncond, condStates, uncondStates, chunks, length: chunks * seqLength };
}
