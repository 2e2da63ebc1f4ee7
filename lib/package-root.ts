// The package root, computed without loading anything else: lib/*.ts (tests) and dist/*.js both
// sit one level below it. lib/native/addon.ts computes the same; modules that must not import it (the
// backend table, which native.ts itself needs) take it from here.
import { fileURLToPath } from "node:url";

export const packageRoot = fileURLToPath(new URL("..", import.meta.url));
