// A sentencepiece model on its own: raw pieces, without the T5Tokenizer rules that the
// model's tokenizer adds (lower-casing, special tokens, padding to 77).
import { readFile } from "node:fs/promises";
import { JsdError, JsdTypeError } from "../errors.js";
import { native, type NativeSentencePiece } from "../native/addon.js";
import { loneSurrogateIndex } from "./unicode.js";

export interface SentencePieceEncoding {
  ids: number[];
  pieces: string[];
}

export class SentencePieceModel {
  readonly #model: NativeSentencePiece;

  private constructor(model: NativeSentencePiece) {
    this.#model = model;
  }

  /** Parses a serialized sentencepiece model. Throws JSD_BAD_TOKENIZER when it is not one. */
  static fromBytes(bytes: Uint8Array): SentencePieceModel {
    if (!(bytes instanceof Uint8Array)) throw new JsdTypeError("bytes must be a Uint8Array");
    return new SentencePieceModel(new (native().SentencePiece)(bytes));
  }

  /** Reads and parses a `.model` file. Throws JSD_NOT_FOUND or JSD_BAD_TOKENIZER. */
  static async load(source: string | Uint8Array): Promise<SentencePieceModel> {
    if (typeof source !== "string") return SentencePieceModel.fromBytes(source);
    let bytes: Buffer;
    try {
      bytes = await readFile(source);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new JsdError(
        "JSD_NOT_FOUND",
        code === "ENOENT" ? `sentencepiece model not found: ${source}` : `cannot read sentencepiece model ${source}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    return SentencePieceModel.fromBytes(bytes);
  }

  get vocabSize(): number {
    return this.#model.vocabSize;
  }

  /** Ids of the special pieces; -1 where the model has none (e.g. no BOS in JSD's vocabulary). */
  get specialIds(): { unk: number; pad: number; eos: number; bos: number } {
    return this.#model.specialIds;
  }

  encode(text: string): SentencePieceEncoding {
    if (typeof text !== "string") throw new JsdTypeError("text must be a string");
    // Node would turn a lone surrogate into U+FFFD on its way to C++ and drop it silently.
    const bad = loneSurrogateIndex(text);
    if (bad >= 0) throw new JsdError("JSD_INVALID_ARGUMENT", `text has a lone UTF-16 surrogate at index ${bad}: it is not valid Unicode text`);
    const { ids, pieces } = this.#model.encode(text);
    return { ids: Array.from(ids), pieces };
  }

  decode(ids: readonly number[]): string {
    if (!Array.isArray(ids)) throw new JsdTypeError("ids must be an array of numbers");
    return this.#model.decode([...ids]);
  }

  pieceToId(piece: string): number {
    return this.#model.pieceToId(piece);
  }

  idToPiece(id: number): string {
    return this.#model.idToPiece(id);
  }
}
