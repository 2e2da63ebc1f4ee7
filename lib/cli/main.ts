#!/usr/bin/env node
// `jsd` entry point (package.json "bin").
import { runCli } from "./program.js";

process.exitCode = await runCli(process.argv);
