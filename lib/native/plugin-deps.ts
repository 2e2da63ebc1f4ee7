// The real file system, package resolution, plugin cache and child-process probe behind
// lib/native/plugins.ts (tests pass their own).
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";
import { probePlugin } from "./probe.js";
import type { PluginDeps } from "./plugins.js";
import { packageRoot } from "../package-root.js";
import { pluginCacheDir } from "./plugin-cache.js";

/**
 * The folders where `name` is installed, looked up the way Node would from each start folder
 * (this package's root, then the app's working directory), without duplicates. Not through
 * require.resolve("<name>/package.json"): node-llama-cpp's binary packages have an `exports` map
 * that does not export their package.json.
 */
export function findInstalledPackages(name: string, from: readonly string[]): string[] {
  const found: string[] = [];
  for (const start of from) {
    const lookup = createRequire(join(start, "noop.js")).resolve.paths(name) ?? [];
    const dir = lookup.map((modules) => join(modules, name)).find((d) => existsSync(join(d, "package.json")));
    if (dir === undefined) continue;
    const real = realpathSync(dir);
    if (!found.includes(real)) found.push(real);
  }
  return found;
}

export function readJsonFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * The real dependencies for choosing plugins for the addon at `addonPath` (probes load that addon;
 * undefined where no addon is known, e.g. `jsd gpu list`: no local-build candidates, and no probe).
 */
export function defaultPluginDeps(root: string = packageRoot, addonPath?: string): PluginDeps {
  return {
    env: process.env,
    platform: process.platform,
    arch: process.arch,
    addonPath,
    cacheDir: pluginCacheDir(process.env, process.platform, homedir()),
    exists: existsSync,
    findPackages: (name) => findInstalledPackages(name, [root, process.cwd()]),
    readJson: readJsonFile,
    probe: (candidate) => (addonPath === undefined ? { ok: false, reason: "there is no addon to test it with" } : probePlugin(addonPath, candidate)),
    warn: (message) => process.emitWarning(message, { code: "JSD_GPU_FALLBACK" }),
  };
}
