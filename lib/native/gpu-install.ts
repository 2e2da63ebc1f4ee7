// `jsd gpu install|list|remove` as library functions. A GPU plugin comes from node-llama-cpp's
// binary package of our ggml release: `npm pack` downloads it (no install, no scripts), its
// sha512 is checked against the registry's integrity, and only the plugin file is extracted into
// the plugin cache. Not their libggml-base or CPU variants: the process must have exactly one
// ggml-base, ours, and the plugin binds to it by its SONAME.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { backendSpec, GGML_RELEASE, GPU_BACKENDS, installableBackends, isGpuBackend, nlcPackageName, nlcPluginPath, pluginFileName, type GpuBackend } from "./backends.js";
import { firstLine, JsdError } from "../errors.js";
import { readJsonFile } from "./plugin-deps.js";
import { candidateVersion, gpuDisabled, pluginCandidates, versionProblem, type PluginLayout, type PluginSource } from "./plugins.js";
import { cachedPluginDir, pluginCacheDir, STAMP_FILE, type PluginStamp } from "./plugin-cache.js";

/** The machine an install runs on; tests replace parts (a fake `run`, another platform). */
export interface InstallSystem {
  platform: string;
  arch: string;
  env: Record<string, string | undefined>;
  homedir: string;
  /** Runs a program and resolves to its stdout; rejects with its stderr in the message. */
  run(command: string, args: string[]): Promise<string>;
}

export interface InstallOptions {
  /** The plugin cache; default JSD_PLUGIN_DIR or the user's cache folder (lib/native/plugin-cache.ts). */
  cacheDir?: string;
  /** Install from this local package tarball (.tgz) instead of downloading it: offline installs, tests. */
  from?: string;
  system?: Partial<InstallSystem>;
}

export interface InstalledPlugin {
  backend: GpuBackend;
  /** The plugin file in the cache. */
  path: string;
  stamp: PluginStamp;
}

/** Windows runs npm as npm.cmd, which Node starts only through a shell (with quoted arguments). */
function runProgram(command: string, args: string[]): Promise<string> {
  const windows = process.platform === "win32";
  const quote = (a: string) => (windows && /[\s"&|<>^]/.test(a) ? `"${a.replace(/"/g, '""')}"` : a);
  return new Promise((done, fail) => {
    execFile(
      windows && command === "npm" ? "npm.cmd" : command,
      windows ? args.map(quote) : args,
      { encoding: "utf8", maxBuffer: 64 << 20, shell: windows, windowsHide: true },
      (error, stdout, stderr) => {
        if (!error) return done(stdout);
        const tail = String(stderr).trim().split("\n").slice(-5).join("\n");
        fail(new Error(`\`${command} ${args.join(" ")}\` failed${tail ? `: ${tail}` : ` (${error.message})`}`, { cause: error }));  // an uncoded cause: wrapped in a coded error before it leaves the package
      },
    );
  });
}

export function defaultInstallSystem(): InstallSystem {
  return { platform: process.platform, arch: process.arch, env: process.env, homedir: homedir(), run: runProgram };
}

function systemOf(options: { system?: Partial<InstallSystem> }): InstallSystem {
  return { ...defaultInstallSystem(), ...options.system };
}

function cacheDirOf(options: { cacheDir?: string }, system: InstallSystem): string {
  return resolve(options.cacheDir ?? pluginCacheDir(system.env, system.platform, system.homedir));
}

/** The GPU backend named, or JSD_INVALID_ARGUMENT listing the ones there are. */
export function gpuBackendArgument(name: string): GpuBackend {
  if (isGpuBackend(name)) return name;
  throw new JsdError("JSD_INVALID_ARGUMENT", `unknown GPU backend '${name}' (one of ${GPU_BACKENDS.join(", ")})`);
}

async function fileDigest(path: string, algorithm: "sha256" | "sha512", encoding: "hex" | "base64"): Promise<string> {
  const hash = createHash(algorithm);
  await pipeline(createReadStream(path), hash);
  return hash.digest(encoding);
}

interface PackResult {
  name: string;
  version: string;
  filename: string;
  integrity: string;
}

/** `npm pack <spec>` into `work`, checked against the registry's integrity; resolves to the tarball. */
async function download(spec: string, backend: GpuBackend, work: string, system: InstallSystem): Promise<string> {
  let output: string;
  try {
    output = await system.run("npm", ["pack", spec, "--json", "--ignore-scripts", "--pack-destination", work]);
  } catch (error) {
    throw new JsdError(
      "JSD_DOWNLOAD_FAILED",
      `could not download ${spec} from the npm registry (${firstLine(error)}). Check the network and \`npm config get registry\`, ` +
        `or fetch the tarball on another machine (\`npm pack ${spec}\`) and run \`jsd gpu install ${backend} --from <file.tgz>\``,
      { cause: error },
    );
  }
  let packed: PackResult | undefined;
  try {
    packed = (JSON.parse(output) as PackResult[])[0];
  } catch {
    packed = undefined;
  }
  if (typeof packed?.filename !== "string" || typeof packed.integrity !== "string") {
    throw new JsdError("JSD_DOWNLOAD_FAILED", `\`npm pack ${spec} --json\` printed no tarball name and integrity`);
  }
  const tarball = join(work, packed.filename);
  const [algorithm] = packed.integrity.split("-");
  if (algorithm !== "sha512") throw new JsdError("JSD_BAD_FILE", `${spec}: the registry gives a ${algorithm} integrity, not sha512; refusing to install it`);
  const digest = `sha512-${await fileDigest(tarball, "sha512", "base64")}`;
  if (digest !== packed.integrity) {
    throw new JsdError("JSD_BAD_FILE", `${spec}: the downloaded tarball's sha512 (${digest}) does not match the registry's integrity (${packed.integrity}); refusing to install it`);
  }
  return tarball;
}

/** Extracts one member of a package tarball into `work`; resolves to its path there. */
async function extract(tarball: string, member: string, work: string, system: InstallSystem, missing: () => JsdError): Promise<string> {
  try {
    await system.run("tar", ["-xzf", tarball, "-C", work, member]);
  } catch (error) {
    throw Object.assign(missing(), { cause: error });
  }
  const path = join(work, ...member.split("/"));
  if (!existsSync(path)) throw missing();
  return path;
}

/**
 * Downloads (or takes `from`) node-llama-cpp's package with the backend's plugin for this
 * platform, checks it is our ggml release, and puts the plugin file into the plugin cache
 * (<cache>/<backend>/<version>/) with a plugin.json stamp. Replaces an earlier install of the same
 * release; leaves other releases' folders alone (other installs of this package may use them).
 */
export async function installGpuPlugin(backend: string, options: InstallOptions = {}): Promise<InstalledPlugin> {
  const gpu = gpuBackendArgument(backend);
  const system = systemOf(options);
  const name = nlcPackageName(gpu, system.platform, system.arch);
  const inside = nlcPluginPath(gpu, system.platform, system.arch);
  if (name === undefined || inside === undefined) {
    const elsewhere = Object.keys(backendSpec(gpu).packages);
    throw new JsdError(
      "JSD_PLUGIN_UNAVAILABLE",
      `${GGML_RELEASE.package} publishes no ${gpu} plugin for ${system.platform}-${system.arch}` +
        `${elsewhere.length ? ` (only for ${elsewhere.join(", ")})` : ""}; build one from source: ${backendSpec(gpu).buildFlag}=1 npm run build:native`,
    );
  }
  const version = GGML_RELEASE.version;
  const spec = `${name}@${version}`;
  const work = mkdtempSync(join(tmpdir(), "jsd-plugin-"));
  try {
    let tarball: string;
    if (options.from !== undefined) {
      tarball = resolve(options.from);
      if (!existsSync(tarball)) throw new JsdError("JSD_NOT_FOUND", `the package tarball ${tarball} does not exist`);
    } else {
      tarball = await download(spec, gpu, work, system);
    }

    const manifestPath = await extract(tarball, "package/package.json", work, system, () => new JsdError("JSD_BAD_FILE", `${tarball} is not an npm package tarball (no package/package.json in it)`));
    const manifest = readJsonFile(manifestPath) as { name?: unknown; version?: unknown } | undefined;
    if (manifest?.name !== name) throw new JsdError("JSD_BAD_FILE", `${tarball} holds ${String(manifest?.name ?? "an unnamed package")}, not ${name}`);
    if (manifest.version !== version) {
      throw new JsdError(
        "JSD_BAD_FILE",
        `${tarball} is ${name} version ${String(manifest.version)}, but this release of japanese-stable-diffusion needs version ${version}: ` +
          `a plugin only works with the ggml it was built with (${GGML_RELEASE.package}@${version})`,
      );
    }
    const extracted = await extract(tarball, `package/${inside}`, work, system, () => new JsdError("JSD_BAD_FILE", `${tarball} holds no ${inside}`));

    const dir = cachedPluginDir(cacheDirOf(options, system), gpu, version);
    const file = pluginFileName(gpu, system.platform);
    const target = join(dir, file);
    mkdirSync(dir, { recursive: true });
    // The stamp goes first and comes back last: a folder caught half-way has no stamp, and the
    // loader refuses a plugin without one. Files are renamed into place, never written there.
    rmSync(join(dir, STAMP_FILE), { force: true });
    const staged = join(dir, `.${file}.${process.pid}.partial`);
    copyFileSync(extracted, staged);
    renameSync(staged, target);
    const stamp: PluginStamp = {
      package: name,
      version,
      file,
      sha256: await fileDigest(target, "sha256", "hex"),
      size: statSync(target).size,
      installedAt: new Date().toISOString(),
      from: options.from !== undefined ? tarball : "npm",
    };
    const stagedStamp = join(dir, `.${STAMP_FILE}.${process.pid}.partial`);
    writeFileSync(stagedStamp, `${JSON.stringify(stamp, null, 2)}\n`);
    renameSync(stagedStamp, join(dir, STAMP_FILE));
    return { backend: gpu, path: target, stamp };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export interface GpuPluginEntry {
  backend: string;
  source: PluginSource;
  path: string;
  /** The release it comes from, where recorded (npm package, plugin cache). */
  version?: string;
  /** Why this release of japanese-stable-diffusion cannot use it; undefined when it can. */
  problem?: string;
}

export interface GpuPluginListing {
  cacheDir: string;
  /** The ggml release plugins must come from. */
  release: string;
  /** JSD_GPU=0 is set: none of these is loaded. */
  disabled: boolean;
  /** Plugin files the loader would consider, in the order it would (lib/native/plugins.ts). */
  found: GpuPluginEntry[];
  /** Cache folders of other releases, kept for other installs of this package. */
  otherReleases: { backend: GpuBackend; version: string; path: string }[];
  /** GPU backends with a package to install on this platform. */
  installable: GpuBackend[];
}

/** What is installed or found, where, and whether this release can use it. Loads nothing, probes nothing. */
export function listGpuPlugins(layout: PluginLayout & { listDir(path: string): string[] }): GpuPluginListing {
  // Listed even under JSD_GPU=0: the listing is about what is there.
  const candidates = pluginCandidates({ ...layout, env: { ...layout.env, JSD_GPU: undefined } });
  const found = candidates.map((c): GpuPluginEntry => ({ ...c, version: candidateVersion(c, layout), problem: versionProblem(c, layout) }));
  const otherReleases: GpuPluginListing["otherReleases"] = [];
  for (const backend of GPU_BACKENDS) {
    for (const version of layout.listDir(join(layout.cacheDir, backend))) {
      if (version === GGML_RELEASE.version) continue;
      otherReleases.push({ backend, version, path: cachedPluginDir(layout.cacheDir, backend, version) });
    }
  }
  return {
    cacheDir: layout.cacheDir,
    release: GGML_RELEASE.version,
    disabled: gpuDisabled(layout.env),
    found,
    otherReleases,
    installable: installableBackends(layout.platform, layout.arch),
  };
}

/** The folder names in `path` ([] when it does not exist). */
export function listFolders(path: string): string[] {
  try {
    return readdirSync(path, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

export interface RemoveOptions {
  cacheDir?: string;
  /** Also remove the backend's folders of other releases. */
  allReleases?: boolean;
  system?: Partial<InstallSystem>;
}

/** Removes a backend's plugin of this release from the cache (all releases with `allReleases`); resolves to the folders removed. */
export function removeGpuPlugin(backend: string, options: RemoveOptions = {}): string[] {
  const gpu = gpuBackendArgument(backend);
  const cacheDir = cacheDirOf(options, systemOf(options));
  const targets = options.allReleases ? [join(cacheDir, gpu)] : [cachedPluginDir(cacheDir, gpu, GGML_RELEASE.version)];
  const removed = targets.filter((dir) => existsSync(dir));
  for (const dir of removed) rmSync(dir, { recursive: true, force: true });
  return removed;
}

