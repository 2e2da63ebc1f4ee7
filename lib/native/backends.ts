// The backend table (native/backends.json), typed. Everything that names a backend, a plugin
// file, a node-llama-cpp package or a system library a plugin needs takes it from here; the
// build scripts read the same JSON, so no list is written twice.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { JsdError } from "../errors.js";
import { packageRoot } from "../package-root.js";

/** The backends this package knows. native/backends.json must list exactly these (checked when read). */
export type Backend = "cpu" | "cuda" | "vulkan" | "metal";
export type GpuBackend = Exclude<Backend, "cpu">;
const KNOWN: readonly Backend[] = ["cpu", "cuda", "vulkan", "metal"];

export interface SystemLibrary {
  /** The file name the dynamic loader looks for, e.g. "libcudart.so.13". */
  file: string;
  /** The platform (process.platform) it applies to. */
  platform: string;
  /** Where to get it, in words for a user. */
  from: string;
  /** Missing, it means the machine has no such GPU set up (a driver library): not worth a warning. */
  absentIfMissing: boolean;
}

export interface BackendSpec {
  name: Backend;
  gpu: boolean;
  /** The name ggml's registry gives the backend ("CUDA", "Vulkan", "MTL", "CPU"). */
  registryName: string;
  /** Plugin file base name ("ggml-cuda"); GPU backends only. */
  plugin?: string;
  /** Environment switch of `npm run build:native` ("JSD_CUDA"). */
  buildFlag?: string;
  /** ggml's CMake option ("GGML_CUDA"). */
  cmakeOption?: string;
  /** node-llama-cpp binary package suffix per "<process.platform>-<process.arch>". */
  packages: Readonly<Record<string, string>>;
  /** What the plugin needs on the system, in words. */
  needs?: string;
  systemLibraries: readonly SystemLibrary[];
}

export interface GgmlRelease {
  package: string;
  version: string;
  integrity: string;
  bundlePath: string;
  /** npm scope of the release's binary packages ("@node-llama-cpp"). */
  binaryScope: string;
  /** Folder of a binary package that holds bins/<suffix>/ ("bins"). */
  binsFolder: string;
}

interface BackendTable {
  ggmlRelease: GgmlRelease;
  pluginFile: { win32: string; default: string };
  auto: { order: Backend[] };
  backends: BackendSpec[];
}

/** Where the table lives, for messages and for scripts that want the path. */
export const BACKENDS_JSON = join(packageRoot, "native", "backends.json");

function tableError(why: string): never {
  throw new JsdError("JSD_INTERNAL", `${BACKENDS_JSON}: ${why}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringField(record: Record<string, unknown>, key: string, where: string): string {
  const value = record[key];
  if (typeof value !== "string" || value === "") tableError(`${where}.${key} must be a non-empty string`);
  return value;
}

function optionalString(record: Record<string, unknown>, key: string, where: string): string | undefined {
  return record[key] === undefined ? undefined : stringField(record, key, where);
}

function isBackend(value: unknown): value is Backend {
  return typeof value === "string" && (KNOWN as readonly string[]).includes(value);
}

/** Checks the parsed JSON against the types above: a typo in the table fails at once, by name. */
export function parseBackendTable(json: unknown): BackendTable {
  if (!isRecord(json)) tableError("not a JSON object");
  const release = json.ggmlRelease;
  if (!isRecord(release)) tableError("ggmlRelease is missing");
  const ggmlRelease: GgmlRelease = {
    package: stringField(release, "package", "ggmlRelease"),
    version: stringField(release, "version", "ggmlRelease"),
    integrity: stringField(release, "integrity", "ggmlRelease"),
    bundlePath: stringField(release, "bundlePath", "ggmlRelease"),
    binaryScope: stringField(release, "binaryScope", "ggmlRelease"),
    binsFolder: stringField(release, "binsFolder", "ggmlRelease"),
  };
  const pluginFile = json.pluginFile;
  if (!isRecord(pluginFile)) tableError("pluginFile is missing");
  const patterns = { win32: stringField(pluginFile, "win32", "pluginFile"), default: stringField(pluginFile, "default", "pluginFile") };

  if (!Array.isArray(json.backends)) tableError("backends must be an array");
  const backends = json.backends.map((entry: unknown, i): BackendSpec => {
    const where = `backends[${i}]`;
    if (!isRecord(entry)) tableError(`${where} is not an object`);
    if (!isBackend(entry.name)) tableError(`${where}.name must be one of ${KNOWN.join(", ")}`);
    if (typeof entry.gpu !== "boolean") tableError(`${where}.gpu must be true or false`);
    const packages = entry.packages ?? {};
    if (!isRecord(packages) || Object.values(packages).some((v) => typeof v !== "string")) tableError(`${where}.packages must map platform-arch to a package suffix`);
    const libraries = entry.systemLibraries ?? [];
    if (!Array.isArray(libraries)) tableError(`${where}.systemLibraries must be an array`);
    const spec: BackendSpec = {
      name: entry.name,
      gpu: entry.gpu,
      registryName: stringField(entry, "registryName", where),
      plugin: optionalString(entry, "plugin", where),
      buildFlag: optionalString(entry, "buildFlag", where),
      cmakeOption: optionalString(entry, "cmakeOption", where),
      packages: packages as Record<string, string>,
      needs: optionalString(entry, "needs", where),
      systemLibraries: libraries.map((lib: unknown, j): SystemLibrary => {
        const at = `${where}.systemLibraries[${j}]`;
        if (!isRecord(lib) || typeof lib.absentIfMissing !== "boolean") tableError(`${at} needs file, platform, from and absentIfMissing`);
        return { file: stringField(lib, "file", at), platform: stringField(lib, "platform", at), from: stringField(lib, "from", at), absentIfMissing: lib.absentIfMissing };
      }),
    };
    if (spec.gpu && (!spec.plugin || !spec.buildFlag || !spec.cmakeOption)) tableError(`${where}: a GPU backend needs plugin, buildFlag and cmakeOption`);
    return spec;
  });
  const names = backends.map((b) => b.name);
  for (const name of KNOWN) if (!names.includes(name)) tableError(`backend ${name} is missing`);
  if (new Set(names).size !== names.length) tableError("a backend is listed twice");

  const auto = json.auto;
  if (!isRecord(auto) || !Array.isArray(auto.order) || !auto.order.every(isBackend)) tableError(`auto.order must list backends (${KNOWN.join(", ")})`);
  if (auto.order.at(-1) !== "cpu") tableError("auto.order must end with cpu: it is the backend that always exists");
  return { ggmlRelease, pluginFile: patterns, auto: { order: auto.order }, backends };
}

const table = parseBackendTable(JSON.parse(readFileSync(BACKENDS_JSON, "utf8")));

/** The ggml release our source and the prebuilt plugins come from. */
export const GGML_RELEASE: Readonly<GgmlRelease> = table.ggmlRelease;
export const BACKENDS: readonly BackendSpec[] = table.backends;
export const BACKEND_NAMES: readonly Backend[] = BACKENDS.map((b) => b.name);
export const GPU_BACKENDS: readonly GpuBackend[] = BACKENDS.filter((b) => b.gpu).map((b) => b.name as GpuBackend);
/** loadModel({ backend: "auto" })'s preference, best first; "cpu" is last. */
export const AUTO_ORDER: readonly Backend[] = table.auto.order;

export function isGpuBackend(name: string): name is GpuBackend {
  return (GPU_BACKENDS as readonly string[]).includes(name);
}

export function backendSpec(name: Backend): BackendSpec {
  return BACKENDS.find((b) => b.name === name)!;
}

/** The plugin's file name on a platform: libggml-cuda.so, ggml-cuda.dll, libggml-metal.so. */
export function pluginFileName(backend: GpuBackend, platform: string = process.platform): string {
  const pattern = platform === "win32" ? table.pluginFile.win32 : table.pluginFile.default;
  return pattern.replace("{name}", backendSpec(backend).plugin!);
}

/** The GPU backend whose plugin file this is, by its name (undefined for any other file). */
export function backendOfPluginFile(path: string, platform: string = process.platform): GpuBackend | undefined {
  // Either separator: a Windows path read on any platform (JSD_PLUGINS, tests).
  const name = path.split(/[\\/]/).at(-1);
  return GPU_BACKENDS.find((b) => pluginFileName(b, platform) === name);
}

/** Our name for a backend from ggml's registry name ("MTL" → "metal"); other names lower-cased. */
export function backendOfRegistryName(registryName: string): string {
  const lower = registryName.toLowerCase();
  return BACKENDS.find((b) => b.registryName.toLowerCase() === lower)?.name ?? lower;
}

/**
 * The name native code knows a backend by: ggml's registry name, lower-cased ("mtl" for Metal).
 * Names cross the addon boundary this way out and through backendOfRegistryName on the way back.
 */
export function nativeBackendName(backend: Backend): string {
  return backendSpec(backend).registryName.toLowerCase();
}

/** node-llama-cpp's package suffix for a GPU backend here ("linux-x64-vulkan"); undefined where it publishes none. */
export function nlcPackageSuffix(backend: GpuBackend, platform: string, arch: string): string | undefined {
  return backendSpec(backend).packages[`${platform}-${arch}`];
}

/** The npm package holding the plugin ("@node-llama-cpp/linux-x64-vulkan"); undefined where there is none. */
export function nlcPackageName(backend: GpuBackend, platform: string, arch: string): string | undefined {
  const suffix = nlcPackageSuffix(backend, platform, arch);
  return suffix === undefined ? undefined : `${GGML_RELEASE.binaryScope}/${suffix}`;
}

/** Where the plugin sits inside that package, relative to its root ("bins/linux-x64-vulkan/libggml-vulkan.so"). */
export function nlcPluginPath(backend: GpuBackend, platform: string, arch: string): string | undefined {
  const suffix = nlcPackageSuffix(backend, platform, arch);
  return suffix === undefined ? undefined : `${GGML_RELEASE.binsFolder}/${suffix}/${pluginFileName(backend, platform)}`;
}

/** GPU backends node-llama-cpp publishes a plugin package for on this platform. */
export function installableBackends(platform: string, arch: string): GpuBackend[] {
  return GPU_BACKENDS.filter((b) => nlcPackageSuffix(b, platform, arch) !== undefined);
}

/** The table's entry for a library file a plugin needs, on a platform. */
export function systemLibrary(file: string, platform: string = process.platform): (SystemLibrary & { backend: Backend }) | undefined {
  for (const spec of BACKENDS) {
    const lib = spec.systemLibraries.find((l) => l.file === file && l.platform === platform);
    if (lib) return { ...lib, backend: spec.name };
  }
  return undefined;
}

/** ggml device types that count as a GPU for "auto" (ggml-vulkan reports even Mesa's lavapipe as "gpu", once GGML_VK_VISIBLE_DEVICES admits it). */
const GPU_DEVICE_TYPES = ["gpu", "igpu"];

/**
 * The one "auto" rule: the first backend in AUTO_ORDER with a device. A GPU backend counts only
 * with a GPU-type device when the device's type is known; "cpu" always has one.
 */
export function autoBackend(devices: readonly { backend: string; type?: string }[]): Backend {
  for (const backend of AUTO_ORDER) {
    if (backend === "cpu") return backend;
    const has = devices.some((d) => backendOfRegistryName(d.backend) === backend && (d.type === undefined || GPU_DEVICE_TYPES.includes(d.type.toLowerCase())));
    if (has) return backend;
  }
  return "cpu";
}
