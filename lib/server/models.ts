// The server's model: the one loaded, and the files it may switch to. A client picks a model by a
// name from this list (A1111's sd_model_checkpoint); its text never becomes a path.
import { readdir, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { MODEL_KEYS } from "../formats/model-keys.js";
import { DEFAULT_MODEL_PATH, loadModel, type LoadModelOptions, type Model } from "../model.js";
import { ServerError } from "./errors.js";

export interface ModelEntry {
  /** The file name without `.gguf`: what clients see and send. */
  name: string;
  /** The file name. */
  file: string;
  /** Where it is (the server's side only). */
  path: string;
}

function entryOf(path: string): ModelEntry {
  const file = basename(path);
  return { name: file.replace(/\.gguf$/i, ""), file, path: resolve(path) };
}

export interface ModelHolderOptions {
  /** The model to start with (default: the first of modelsDir, else the embedded model). */
  model?: string;
  /** A folder of .gguf files clients may switch between. */
  modelsDir?: string;
  load: LoadModelOptions;
}

export class ModelHolder {
  #model?: Model;
  #entry?: ModelEntry;

  constructor(readonly options: ModelHolderOptions) {}

  /** The model files: the starting model, then modelsDir's .gguf files by name. */
  async list(): Promise<ModelEntry[]> {
    const entries: ModelEntry[] = [];
    if (this.options.modelsDir) {
      const files = await readdir(this.options.modelsDir).catch((error: NodeJS.ErrnoException) => {
        throw new ServerError("JSD_INTERNAL", `cannot read the models folder: ${error.code ?? error.message}`);
      });
      for (const file of files.filter((f) => /\.gguf$/i.test(f)).sort()) {
        const path = join(this.options.modelsDir, file);
        if ((await stat(path).catch(() => undefined))?.isFile()) entries.push(entryOf(path));
      }
    }
    const first = this.options.model ? entryOf(this.options.model) : entries.length === 0 ? entryOf(DEFAULT_MODEL_PATH) : undefined;
    if (first && !entries.some((e) => e.path === first.path)) entries.unshift(first);
    return entries;
  }

  get model(): Model {
    if (!this.#model) throw new ServerError("JSD_SHUTTING_DOWN", "no model is loaded");
    return this.#model;
  }

  get entry(): ModelEntry | undefined {
    return this.#entry;
  }

  /** Loads the starting model. */
  async open(): Promise<void> {
    const [first] = await this.list();
    await this.#load(first);
  }

  /** The entry a client's name (name, file name or A1111 title "name [hash]") stands for. */
  async find(requested: string): Promise<ModelEntry | undefined> {
    const name = requested.replace(/\s*\[[0-9a-f]+\]$/i, "");
    return (await this.list()).find((e) => e.name === name || e.file === name);
  }

  /** Switches to another model of the list (call it between jobs: JobQueue.exclusive). */
  async switchTo(entry: ModelEntry): Promise<void> {
    if (entry.path === this.#entry?.path) return;
    const previous = this.#entry;
    // One model in memory at a time: a second full-size one may not fit.
    await this.close();
    try {
      await this.#load(entry);
    } catch (error) {
      if (previous) await this.#load(previous).catch(() => undefined);
      throw error;
    }
  }

  /** A1111's short hash: the first 10 hex digits of the weights' SHA-256, when the file records it. */
  get shortHash(): string | null {
    return this.#model?.metadata[MODEL_KEYS.dataSha256]?.slice(0, 10) ?? null;
  }

  async close(): Promise<void> {
    const model = this.#model;
    this.#model = undefined;
    this.#entry = undefined;
    await model?.close();
  }

  async #load(entry: ModelEntry): Promise<void> {
    this.#model = await loadModel(entry.path, this.options.load);
    this.#entry = entry;
  }
}
