// The `jsd` command line: subcommands are registered from their own files.
import { Command, CommanderError } from "commander";
import { firstLine, isJsdError } from "../errors.js";
import { version } from "../system-info.js";
import { registerConvert } from "./convert.js";
import { registerDoctor } from "./doctor.js";
import { registerGenerate } from "./generate.js";
import { registerGpu } from "./gpu.js";
import { registerInfo } from "./info.js";
import { registerServe } from "./serve.js";
import { registerWorker } from "./worker.js";
import { registerTokens } from "./tokens.js";
import { CliExit, processIo, type CliIo } from "./io.js";

export function createProgram(io: CliIo = processIo): Command {
  const program = new Command("jsd")
    .description("Japanese Stable Diffusion (rinna) with ggml")
    .version(version(), "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => void io.stderr.write(s),
    })
    .exitOverride();
  registerGenerate(program, io);
  registerConvert(program, io);
  registerInfo(program, io);
  registerTokens(program, io);
  registerDoctor(program, io);
  registerGpu(program, io);
  registerServe(program, io);
  registerWorker(program, io);
  return program;
}

/** One line saying why the command failed. */
export function errorLine(error: unknown): string {
  return isJsdError(error) ? `jsd: ${firstLine(error)} (${error.code})` : `jsd: ${firstLine(error)}`;
}

/** Runs the CLI on `argv` (node-style: argv[0] node, argv[1] script). Resolves to the exit code. */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const program = createProgram(io);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode; // commander has printed the message
    if (error instanceof CliExit) return error.exitCode;
    io.stderr.write(`${errorLine(error)}\n`);
    return isJsdError(error) && error.code === "JSD_ABORTED" ? 130 : 1;
  }
}
