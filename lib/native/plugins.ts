// Which GPU backend plugins to load beside the addon. The addon registers ggml's CPU backend from
// its own folder; GPU backends are plugin files (GGML_BACKEND_DL) found in four places:
//   - JSD_PLUGINS: an explicit list of plugin files (path-delimited); when set, nothing else is looked for;
//   - local build: the plugin beside the addon (`JSD_CUDA=1 npm run build:native` writes libggml-cuda.so
//     into build/Release/ next to jsd.node);
//   - npm package: node-llama-cpp's binary package of the ggml release our source comes from
//     (@node-llama-cpp/<platform>-<arch>-<gpu>), installed in the user's app;
//   - plugin cache: what `jsd gpu install <backend>` extracted (lib/native/gpu-install.ts).
// Each candidate is test-loaded in a child process (lib/native/probe.ts) and at most one plugin per
// backend is kept: the first that works. JSD_GPU=0 turns all of this off. This file decides over
// injected file-system, package and probe functions; lib/native/plugin-deps.ts supplies the real ones.
import { basename, dirname, join, resolve } from "node:path";
import {
  AUTO_ORDER,
  backendOfPluginFile,
  GGML_RELEASE,
  GPU_BACKENDS,
  isGpuBackend,
  nlcPackageName,
  nlcPluginPath,
  pluginFileName,
  type GpuBackend,
} from "./backends.js";
import type { PluginLoadResult, ProbeResult } from "./probe.js";
import { cachedPluginDir, parseStamp, STAMP_FILE } from "./plugin-cache.js";

/** Where a candidate came from, for messages, `jsd doctor` and `jsd gpu list`. */
export type PluginSource = "JSD_PLUGINS" | "local build" | "npm package" | "plugin cache";

export interface PluginCandidate {
  /** A GPU backend of native/backends.json; for a JSD_PLUGINS file of another name, the name its file carries. */
  backend: string;
  path: string;
  source: PluginSource;
}

export interface SkippedPlugin extends PluginCandidate {
  reason: string;
  /** The machine merely lacks this GPU (no device, no driver library): normal, not warned about. */
  absent: boolean;
}

/** What choosePlugins() decided: the files to hand to the addon's loadBackends(), and the rest. */
export interface PluginChoice {
  /** Paths for loadBackends(), at most one per backend. */
  plugins: string[];
  /** The candidates of those paths. */
  chosen: PluginCandidate[];
  skipped: SkippedPlugin[];
}

/** What is in use after loading (systemInfo().plugins, `jsd doctor`). */
export interface PluginReport {
  loaded: PluginCandidate[];
  skipped: SkippedPlugin[];
}

/** One entry of the addon's loadBackends() result. */
export type { PluginLoadResult } from "./probe.js";

/** Where to look: the file system, installed packages and the environment. */
export interface PluginLayout {
  env: Record<string, string | undefined>;
  platform: string;
  arch: string;
  /** The addon in use; local-build plugins sit beside it. Undefined: none is known (no local-build candidates). */
  addonPath?: string;
  /** The plugin cache (lib/native/plugin-cache.ts pluginCacheDir). */
  cacheDir: string;
  exists(path: string): boolean;
  /** The folders of an installed package, each place it is found (none when it is not installed). */
  findPackages(name: string): string[];
  /** A parsed JSON file, or undefined when it cannot be read or parsed. */
  readJson(path: string): unknown;
}

/** A probe's verdict; `quiet` marks a failure not worth a warning that is not an absent GPU either. */
export type CandidateVerdict = ProbeResult | { ok: false; reason: string; quiet: true };

export interface PluginDeps extends PluginLayout {
  /** Test-loads a candidate in a child process (lib/native/probe.ts probePlugin). */
  probe(candidate: PluginCandidate): ProbeResult;
  warn(message: string): void;
}

/** JSD_GPU=0 (or off/false/no) turns GPU plugins off: the CPU backend alone, nothing probed. */
export function gpuDisabled(env: Record<string, string | undefined>): boolean {
  const value = env.JSD_GPU?.trim().toLowerCase();
  return value !== undefined && ["0", "off", "false", "no"].includes(value);
}

/** The files JSD_PLUGINS names, resolved; split like PATH (";" on Windows, ":" elsewhere). */
export function explicitPlugins(env: Record<string, string | undefined>, platform: string): string[] {
  const delimiter = platform === "win32" ? ";" : ":";
  return (env.JSD_PLUGINS ?? "")
    .split(delimiter)
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => resolve(p));
}

/** A backend name for a plugin file: the table's by file name, else what the name says ("libggml-foo.so" → "foo"). */
function backendOfFile(path: string, platform: string): string {
  return backendOfPluginFile(path, platform) ?? basename(path).replace(/^lib/, "").replace(/\.(so|dll|dylib)$/, "").replace(/^ggml-/, "");
}

/** GPU backends in "auto" order (any the order leaves out after it): the order candidates are listed in. */
function gpuOrder(): GpuBackend[] {
  const ordered = AUTO_ORDER.filter(isGpuBackend);
  return [...ordered, ...GPU_BACKENDS.filter((b) => !ordered.includes(b))];
}

/**
 * The plugin files that exist, grouped by backend (CUDA, Metal, Vulkan: the "auto" order) and,
 * within a backend, best source first: a local build (made for this very addon), then an npm
 * package the app installed, then the plugin cache. JSD_PLUGINS replaces the search; JSD_GPU=0
 * empties the list.
 */
export function pluginCandidates(layout: PluginLayout): PluginCandidate[] {
  if (gpuDisabled(layout.env)) return [];
  const explicit = explicitPlugins(layout.env, layout.platform);
  if (explicit.length > 0) {
    // Listed whether or not they exist: whoever names a file wants to hear why it is not used.
    return explicit.map((path) => ({ backend: backendOfFile(path, layout.platform), path, source: "JSD_PLUGINS" }));
  }
  const out: PluginCandidate[] = [];
  const add = (backend: GpuBackend, path: string, source: PluginSource) => {
    if (layout.exists(path) && !out.some((c) => c.path === path)) out.push({ backend, path, source });
  };
  for (const backend of gpuOrder()) {
    const file = pluginFileName(backend, layout.platform);
    if (layout.addonPath !== undefined) add(backend, join(dirname(layout.addonPath), file), "local build");
    const name = nlcPackageName(backend, layout.platform, layout.arch);
    const inside = nlcPluginPath(backend, layout.platform, layout.arch);
    if (name !== undefined && inside !== undefined) {
      for (const dir of layout.findPackages(name)) add(backend, join(dir, ...inside.split("/")), "npm package");
    }
    add(backend, join(cachedPluginDir(layout.cacheDir, backend, GGML_RELEASE.version), file), "plugin cache");
  }
  return out;
}

/** The root of the npm package a candidate's file lies in (<root>/bins/<suffix>/<file>). */
export function packageDirOf(candidate: PluginCandidate): string {
  return resolve(candidate.path, "..", "..", "..");
}

/** Which release a candidate comes from, where that is recorded: its package.json, or its plugin.json in the cache. */
export function candidateVersion(candidate: PluginCandidate, layout: Pick<PluginLayout, "readJson">): string | undefined {
  if (candidate.source === "npm package") {
    const json = layout.readJson(join(packageDirOf(candidate), "package.json"));
    const version = (json as { version?: unknown } | undefined)?.version;
    return typeof version === "string" ? version : undefined;
  }
  if (candidate.source === "plugin cache") return parseStamp(layout.readJson(join(dirname(candidate.path), STAMP_FILE)))?.version;
  return undefined;
}

/**
 * Why a candidate cannot serve this package, before any probe: a plugin from another ggml release
 * than ours (its ABI with ggml-base changes between releases), or a cache folder without its stamp.
 * Local builds come from our own source and JSD_PLUGINS files are the user's call: never refused here.
 */
export function versionProblem(candidate: PluginCandidate, layout: Pick<PluginLayout, "readJson">): string | undefined {
  const wanted = GGML_RELEASE.version;
  if (candidate.source === "npm package") {
    const version = candidateVersion(candidate, layout);
    if (version === wanted) return undefined;
    return (
      `its package is version ${version ?? "unknown"}, but japanese-stable-diffusion is built from ggml of ` +
      `${GGML_RELEASE.package}@${wanted} and a plugin only works with the ggml it was built with: ` +
      `install version ${wanted} of that package, or use \`npx jsd gpu install ${candidate.backend}\``
    );
  }
  if (candidate.source === "plugin cache") {
    const stamp = parseStamp(layout.readJson(join(dirname(candidate.path), STAMP_FILE)));
    if (!stamp) return `its ${STAMP_FILE} is missing or unreadable (an interrupted install?): run \`npx jsd gpu install ${candidate.backend}\` again`;
    if (stamp.version !== wanted) return `it was installed from version ${stamp.version} of ${stamp.package}, not ${wanted}: run \`npx jsd gpu install ${candidate.backend}\` again`;
    if (stamp.file !== basename(candidate.path)) return `its ${STAMP_FILE} describes ${stamp.file}, not this file: run \`npx jsd gpu install ${candidate.backend}\` again`;
  }
  return undefined;
}

export function fallbackWarning(skipped: SkippedPlugin): string {
  return (
    `japanese-stable-diffusion: not using the ${skipped.backend} plugin ${skipped.path} (${skipped.source}): ${skipped.reason}. ` +
    `Models run on the other backends (the CPU always); \`npx jsd doctor\` lists the plugins, JSD_GPU=0 turns them off.`
  );
}

/**
 * Whether a failed candidate deserves a warning. Never for an absent GPU, except for a file the user
 * named in JSD_PLUGINS; never for a `quiet` verdict (an installed npm package of another release,
 * which is most likely node-llama-cpp's own dependency rather than one installed for us).
 */
function warrantsWarning(candidate: PluginCandidate, verdict: CandidateVerdict & { ok: false }): boolean {
  if (candidate.source === "JSD_PLUGINS") return true;
  if ("quiet" in verdict) return false;
  return !verdict.absent;
}

/**
 * Probes the candidates in order and keeps the first that works for each backend; later ones of
 * that backend are passed over without a probe. Each failure is listed in `skipped` and, when it
 * warrants it, reported once through `warn`.
 */
export function choosePlugins(candidates: readonly PluginCandidate[], probe: (candidate: PluginCandidate) => CandidateVerdict, warn: (message: string) => void): PluginChoice {
  const chosen: PluginCandidate[] = [];
  const skipped: SkippedPlugin[] = [];
  for (const candidate of candidates) {
    const winner = chosen.find((c) => c.backend === candidate.backend);
    if (winner) {
      skipped.push({ ...candidate, reason: `the ${winner.backend} plugin from the ${winner.source} (${winner.path}) is used instead`, absent: false });
      continue;
    }
    const verdict = probe(candidate);
    if (verdict.ok) {
      chosen.push(candidate);
      continue;
    }
    const entry: SkippedPlugin = { ...candidate, reason: verdict.reason, absent: "absent" in verdict && verdict.absent === true };
    skipped.push(entry);
    if (warrantsWarning(candidate, verdict)) warn(fallbackWarning(entry));
  }
  return { plugins: chosen.map((c) => c.path), chosen, skipped };
}

/** The whole choice: candidates, the version check (before any probe), then the probes. */
export function selectPlugins(deps: PluginDeps): PluginChoice {
  const check = (candidate: PluginCandidate): CandidateVerdict => {
    if (candidate.source === "JSD_PLUGINS" && !deps.exists(candidate.path)) return { ok: false, reason: "there is no such file" };
    const problem = versionProblem(candidate, deps);
    if (problem) return candidate.source === "npm package" ? { ok: false, reason: problem, quiet: true } : { ok: false, reason: problem };
    return deps.probe(candidate);
  };
  return choosePlugins(pluginCandidates(deps), check, deps.warn);
}

/**
 * After the addon's loadBackends(cpuDir, choice.plugins): the plugins in use, and the chosen ones
 * that passed their probe yet failed to load here (another plugin already loaded can differ from
 * the probe's fresh process), each warned about once.
 */
export function pluginReport(choice: PluginChoice, results: readonly PluginLoadResult[], warn: (message: string) => void): PluginReport {
  const loaded: PluginCandidate[] = [];
  const skipped = [...choice.skipped];
  for (const candidate of choice.chosen) {
    const result = results.find((r) => r.path === candidate.path);
    if (result?.loaded) {
      loaded.push(candidate);
      continue;
    }
    const entry: SkippedPlugin = { ...candidate, reason: `it passed its probe but did not load in this process (${result?.error ?? "no result"})`, absent: false };
    skipped.push(entry);
    warn(fallbackWarning(entry));
  }
  return { loaded, skipped };
}
