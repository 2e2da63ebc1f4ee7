// `jsd tokens "<prompt>"`: how a prompt is tokenized, with chunk boundaries (extended mode) or
// the truncation point (reference mode) marked.
import { type Command, Option } from "commander";
import { loadModel } from "../model.js";
import { formatTokenListing, PROMPT_MODES, type PromptMode } from "../prompt/index.js";
import type { CliIo } from "./io.js";

export function registerTokens(program: Command, io: CliIo): void {
  program
    .command("tokens")
    .description("show how a prompt is tokenized: pieces, ids, weights and the 77-token limit")
    .argument("<prompt>", "the prompt")
    .addOption(new Option("--prompt-mode <mode>", "reference (rinna: truncate at 77) or extended (chunks, emphasis, BREAK)").choices([...PROMPT_MODES]).default("reference"))
    .option("-m, --model <file.gguf>", "model whose tokenizer to use (default: the embedded model)")
    .option("--ids", "show token ids", false)
    .option("--json", "machine-readable output", false)
    .action(async (prompt: string, flags: { promptMode: PromptMode; model?: string; ids: boolean; json: boolean }) => {
      const model = await loadModel(flags.model, { threads: 1 });
      try {
        const tokens = model.tokenize(prompt, { mode: flags.promptMode });
        if (flags.json) {
          io.stdout.write(`${JSON.stringify(tokens, (_k, v) => (v instanceof Int32Array || v instanceof Float32Array ? Array.from(v) : v))}\n`);
        } else {
          io.stdout.write(`${formatTokenListing(tokens, { ids: flags.ids })}\n`);
        }
      } finally {
        await model.close();
      }
    });
}
