// The plugin cache that `jsd gpu install` fills and the loader reads: where it is and how it is
// laid out. One folder per backend and ggml release (<cache>/<backend>/<version>/) holding only
// the plugin file and a stamp, so that several releases of this package can share one cache.
import { join } from "node:path";
import type { GpuBackend } from "./backends.js";

/** The stamp beside each installed plugin. Written last: a folder without one is an interrupted install. */
export const STAMP_FILE = "plugin.json";

export interface PluginStamp {
  /** The npm package it came from ("@node-llama-cpp/linux-x64-vulkan"). */
  package: string;
  version: string;
  /** The plugin's file name in this folder. */
  file: string;
  /** SHA-256 (hex) of the plugin file as extracted. */
  sha256: string;
  size: number;
  /** ISO date of the install. */
  installedAt: string;
  /** "npm" (downloaded with npm pack) or the local tarball it was installed from. */
  from: string;
}

/**
 * JSD_PLUGIN_DIR, else the user's cache folder: $XDG_CACHE_HOME or ~/.cache on Linux and macOS,
 * %LOCALAPPDATA% on Windows, each + japanese-stable-diffusion/plugins.
 */
export function pluginCacheDir(env: Record<string, string | undefined>, platform: string, homedir: string): string {
  const explicit = env.JSD_PLUGIN_DIR?.trim();
  if (explicit) return explicit;
  const base = platform === "win32" ? env.LOCALAPPDATA?.trim() || join(homedir, "AppData", "Local") : env.XDG_CACHE_HOME?.trim() || join(homedir, ".cache");
  return join(base, "japanese-stable-diffusion", "plugins");
}

/** The folder of one backend's plugin for one ggml release. */
export function cachedPluginDir(cacheDir: string, backend: GpuBackend, version: string): string {
  return join(cacheDir, backend, version);
}

/** A parsed plugin.json, or undefined when it is not one (missing fields, wrong types). */
export function parseStamp(json: unknown): PluginStamp | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  const s = json as Record<string, unknown>;
  const strings = ["package", "version", "file", "sha256", "installedAt", "from"] as const;
  if (!strings.every((k) => typeof s[k] === "string") || typeof s.size !== "number") return undefined;
  return s as unknown as PluginStamp;
}
