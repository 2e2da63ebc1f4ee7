// Which native binary to load. node-gyp-build picks a binary by platform, arch and Node ABI
// only, so it cannot choose between the CPU build and a CUDA, Vulkan or Metal build of the
// same platform. GPU builds therefore live apart, named by backend:
//   - local builds: build-<backend>/Release/jsd.node (`JSD_CUDA=1 npm run build:native` writes
//     build-cuda/, and likewise for JSD_VULKAN and JSD_METAL);
//   - optional npm packages @japanese-stable-diffusion/<platform>-<arch>-<backend>, whose root
//     holds prebuilds/<platform>-<arch>/node.napi.node with its shared libraries beside it.
// Order: JSD_BINARY (an explicit path, used as-is) → each GPU binary that exists and passes a
// probe (skipped entirely with JSD_GPU=0) → the CPU binary through node-gyp-build, last resort.
// This file decides; lib/native.ts supplies the real file system, probe and loader.
import { join, resolve } from "node:path";
import { JsdError } from "./errors.js";
import { prebuildBaselineProblem } from "./cpu-baseline.js";

export type BinaryVariant = "cpu" | "cuda" | "vulkan" | "metal";
export type GpuVariant = Exclude<BinaryVariant, "cpu">;

/** GPU variants in the order they are tried: CUDA is the fastest where it works, Vulkan covers other GPUs. */
export const GPU_VARIANTS: readonly GpuVariant[] = ["cuda", "vulkan", "metal"];

/** Where a candidate came from, for messages and `jsd doctor`. */
export type BinarySource = "JSD_BINARY" | "local build" | "npm package" | "node-gyp-build";

export interface BinaryCandidate {
  variant: BinaryVariant;
  path: string;
  source: BinarySource;
}

export interface SkippedBinary extends BinaryCandidate {
  reason: string;
}

/**
 * `absent`: the machine simply has no such GPU (no device, or no driver/runtime library to load):
 * the normal case for most users of an installed GPU package, so it is not warned about.
 */
export type ProbeResult = { ok: true } | { ok: false; reason: string; absent?: boolean };
export type Probe = (candidate: BinaryCandidate) => ProbeResult;

/** The addon surface the selection needs: enough to name the variant of a binary it did not probe. */
export interface IdentifiableAddon {
  systemInfo(): { backends: string[] };
}

export interface BinaryChoice<A> {
  addon: A;
  /** The binary in use; for JSD_BINARY and node-gyp-build, its variant is read from its compiled backends. */
  binary: BinaryCandidate;
  /** GPU binaries tried before it, in order, with why each was passed over. */
  skipped: SkippedBinary[];
}

export interface BinaryLayout {
  packageRoot: string;
  platform: string;
  arch: string;
  exists(path: string): boolean;
  /** The folder of an installed package, or undefined when it is not installed. */
  findPackage(name: string): string | undefined;
  /** The `version` of the package.json in a folder (undefined when unreadable). */
  packageVersion?(dir: string): string | undefined;
}

export interface LoaderDeps<A> extends BinaryLayout {
  env: Record<string, string | undefined>;
  probe: Probe;
  /** Loads a .node file into this process (require). */
  load(path: string): A;
  /** node-gyp-build's choice of the CPU binary: build/Release, else prebuilds/; throws when there is none. */
  findCpuBinary(packageRoot: string): string;
  /** The CPU's feature flags where they can be read (Linux), to refuse a prebuilt binary this CPU cannot run. */
  cpuFlags?(): Set<string> | undefined;
  warn(message: string): void;
}

export function variantPackageName(platform: string, arch: string, variant: GpuVariant): string {
  return `@japanese-stable-diffusion/${platform}-${arch}-${variant}`;
}

/** Where the binary sits inside a variant package (the layout prebuilds/ has in the main package). */
export function variantPackageBinary(packageDir: string, platform: string, arch: string): string {
  return join(packageDir, "prebuilds", `${platform}-${arch}`, "node.napi.node");
}

export function localBuildBinary(packageRoot: string, variant: GpuVariant): string {
  return join(packageRoot, `build-${variant}`, "Release", "jsd.node");
}

/** JSD_GPU=0 (or off/false/no) turns GPU binaries off; the CPU binary is used without probing anything. */
export function gpuDisabled(env: Record<string, string | undefined>): boolean {
  const value = env.JSD_GPU?.trim().toLowerCase();
  return value !== undefined && ["0", "off", "false", "no"].includes(value);
}

/** The variant a loaded binary was compiled as: its first GPU backend, else "cpu". */
export function variantOfBackends(backends: readonly string[]): BinaryVariant {
  const lower = backends.map((b) => b.toLowerCase());
  return GPU_VARIANTS.find((v) => lower.includes(v)) ?? "cpu";
}

/**
 * GPU binaries that exist, in the order they are tried. Local builds come first: like
 * node-gyp-build's build/Release, a binary built here is one the user asked for.
 */
export function gpuCandidates(layout: BinaryLayout): BinaryCandidate[] {
  const out: BinaryCandidate[] = [];
  for (const variant of GPU_VARIANTS) {
    const path = localBuildBinary(layout.packageRoot, variant);
    if (layout.exists(path)) out.push({ variant, path, source: "local build" });
  }
  for (const variant of GPU_VARIANTS) {
    const dir = layout.findPackage(variantPackageName(layout.platform, layout.arch, variant));
    if (dir === undefined) continue;
    const path = variantPackageBinary(dir, layout.platform, layout.arch);
    if (layout.exists(path)) out.push({ variant, path, source: "npm package" });
  }
  return out;
}

/**
 * Why an installed GPU package cannot serve this version of the package, if it cannot: its
 * binary and this version's TypeScript must come from the same release (the native calls change
 * between versions), and npm can leave an old optional package behind.
 */
export function versionMismatch(candidate: BinaryCandidate, layout: BinaryLayout): string | undefined {
  if (candidate.source !== "npm package" || !layout.packageVersion) return undefined;
  const own = layout.packageVersion(layout.packageRoot);
  // The binary lies at <package>/prebuilds/<platform>-<arch>/node.napi.node.
  const theirs = layout.packageVersion(resolve(candidate.path, "..", "..", ".."));
  if (own === undefined || theirs === own) return undefined;
  return `its package is version ${theirs ?? "unknown"}, not ${own} like japanese-stable-diffusion; reinstall to update it`;
}

export function fallbackWarning(skipped: SkippedBinary): string {
  return (
    `japanese-stable-diffusion: skipping the ${skipped.variant} binary ${skipped.path} (${skipped.source}): ${skipped.reason}. ` +
    `Trying the next binary (the CPU one last); set JSD_GPU=0 to skip GPU binaries.`
  );
}

/**
 * The first GPU candidate that passes its probe and then loads here. Each one passed over is
 * listed in `skipped` and, unless its GPU is merely absent, reported once through `warn`
 * (a broken binary); candidates after the chosen one are never probed.
 */
export function chooseGpuBinary<A>(
  candidates: readonly BinaryCandidate[],
  probe: Probe,
  load: (path: string) => A,
  warn: (message: string) => void,
): { chosen?: { addon: A; binary: BinaryCandidate }; skipped: SkippedBinary[] } {
  const skipped: SkippedBinary[] = [];
  const skip = (candidate: BinaryCandidate, reason: string, quiet = false) => {
    const entry = { ...candidate, reason };
    skipped.push(entry);
    if (!quiet) warn(fallbackWarning(entry));
  };
  for (const candidate of candidates) {
    const result = probe(candidate);
    if (!result.ok) {
      skip(candidate, result.reason, result.absent);
      continue;
    }
    try {
      return { chosen: { addon: load(candidate.path), binary: candidate }, skipped };
    } catch (error) {
      // The probe loaded it in a fresh process; here something else (an addon already loaded) can differ.
      skip(candidate, `it passed the probe but failed to load in this process (${firstLine(error)})`);
    }
  }
  return { skipped };
}

/** JSD_BINARY, else a working GPU binary, else the CPU binary. Throws JSD_NATIVE_UNAVAILABLE when none loads. */
export function loadNativeBinary<A extends IdentifiableAddon>(deps: LoaderDeps<A>): BinaryChoice<A> {
  const explicit = deps.env.JSD_BINARY?.trim();
  if (explicit) {
    // Used as-is, without a probe: whoever sets it wants this binary or an error, never a fallback.
    const path = resolve(explicit);
    try {
      const addon = deps.load(path);
      return { addon, binary: { variant: identify(addon), path, source: "JSD_BINARY" }, skipped: [] };
    } catch (error) {
      throw new JsdError("JSD_NATIVE_UNAVAILABLE", `JSD_BINARY=${explicit}: the native addon ${path} could not be loaded (${firstLine(error)})`, { cause: error });
    }
  }

  const candidates = gpuDisabled(deps.env) ? [] : gpuCandidates(deps);
  const probe: Probe = (candidate) => {
    const mismatch = versionMismatch(candidate, deps);
    return mismatch ? { ok: false, reason: mismatch } : deps.probe(candidate);
  };
  const { chosen, skipped } = chooseGpuBinary(candidates, probe, deps.load, deps.warn);
  if (chosen) return { ...chosen, skipped };

  const unavailable = (error: unknown) => {
    const gpuNote = skipped.length ? ` GPU binaries were skipped too: ${skipped.map((s) => `${s.path}: ${s.reason}`).join("; ")}.` : "";
    return new JsdError(
      "JSD_NATIVE_UNAVAILABLE",
      `the native addon could not be loaded (${firstLine(error)}). ` +
        `No prebuilt binary matches ${deps.platform}-${deps.arch}; build it from source with \`npm run build\` ` +
        `(needs cmake, a C++17 compiler and libsentencepiece-dev).${gpuNote}`,
      { cause: error },
    );
  };
  let path: string;
  try {
    path = deps.findCpuBinary(deps.packageRoot);
  } catch (error) {
    throw unavailable(error);
  }
  const baseline = prebuildBaselineProblem(path, deps.arch, () => deps.cpuFlags?.());
  if (baseline) throw new JsdError("JSD_NATIVE_UNAVAILABLE", baseline);
  try {
    const addon = deps.load(path);
    return { addon, binary: { variant: identify(addon), path, source: "node-gyp-build" }, skipped };
  } catch (error) {
    throw unavailable(error);
  }
}

function identify(addon: IdentifiableAddon): BinaryVariant {
  return variantOfBackends(addon.systemInfo().backends);
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}
