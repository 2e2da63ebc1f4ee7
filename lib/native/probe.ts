// Test-loads a GPU plugin in a child process before this process loads it. A broken plugin (a
// missing libcudart, a driver older than the toolkit, a Vulkan loader without a driver) can abort
// or crash inside native code during dlopen or device enumeration, where no try/catch reaches;
// in a child that costs one exit code, and the loader goes on without that plugin.
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { backendOfRegistryName, backendSpec, isGpuBackend, systemLibrary } from "./backends.js";

/** GPU initialisation (CUDA context, Vulkan instance) takes seconds at most; a hang is a failure. */
export const PROBE_TIMEOUT_MS = 20_000;

/**
 * `absent`: the machine simply has no such GPU (no device, or no driver library to load): the
 * normal case for most machines, so it is not warned about. `missing`: set when a library the
 * plugin needs could not be found (its file names, where the loader's message gives them).
 */
/** What the addon's loadBackends() says of one plugin file. */
export interface PluginLoadResult {
  path: string;
  loaded: boolean;
  backend?: string;
  error?: string;
}

export type ProbeResult = { ok: true } | { ok: false; reason: string; absent?: boolean; missing?: string[] };

/** What a probe needs to know about the plugin it tries. */
export interface ProbeTarget {
  backend: string;
  path: string;
}

/** Printed before the probe's JSON so that anything else the addon writes to stdout is ignored. */
const MARK = "JSD_PROBE ";

// Runs in the child with the addon's and the plugin's paths as argv[1] and argv[2]: load the
// addon, register its CPU backend and the plugin, list the devices, print one marked line.
const PROBE_SCRIPT = `
const addon = require(process.argv[1]);
const [load] = addon.loadBackends(require("node:path").dirname(process.argv[1]), [process.argv[2]]);
const devices = addon.listDevices().map((d) => d.backend);
process.stdout.write("\\n${MARK}" + JSON.stringify({ load, devices }) + "\\n");
`;

export interface ProbeOptions {
  timeoutMs?: number;
  /** The code the child runs instead of the standard probe (tests simulate hangs and crashes with it). */
  script?: string;
  platform?: string;
}

const cache = new Map<string, ProbeResult>();

/**
 * Whether the plugin loads beside the addon in a fresh Node process and gives at least one device
 * of its backend. Results are cached for the life of this process: each plugin is probed once.
 */
export function probePlugin(addonPath: string, target: ProbeTarget, options: ProbeOptions = {}): ProbeResult {
  const timeoutMs = options.timeoutMs ?? PROBE_TIMEOUT_MS;
  const script = options.script ?? PROBE_SCRIPT;
  const key = JSON.stringify([addonPath, target.path, target.backend, timeoutMs, script]);
  const cached = cache.get(key);
  if (cached) return cached;
  // Synchronous only because native() is: the first call chooses the plugins and every later
  // call reuses them, so this blocks once per process (up to the timeout per plugin tried).
  const child = spawnSync(process.execPath, ["-e", script, addonPath, target.path], {
    encoding: "utf8",
    timeout: timeoutMs,
    // SIGTERM can be ignored by a process stuck in a driver call; SIGKILL cannot.
    killSignal: "SIGKILL",
    windowsHide: true,
    maxBuffer: 1 << 20,
    // The child sees this process's environment (library paths, CUDA_VISIBLE_DEVICES); under
    // Electron, process.execPath is the app and runs as plain Node only with this flag.
    env: { ...process.env, ELECTRON_RUN_AS_NODE: "1" },
  });
  const result = readProbe(child, target.backend, timeoutMs, options.platform ?? process.platform);
  cache.set(key, result);
  return result;
}

// What dynamic loaders say when a file is missing: glibc, macOS dyld, Windows.
const LINUX_MISSING = /([^\s:'"]+): cannot open shared object file/g;
const MAC_MISSING = /Library not loaded: ([^\s'"]+)/g;
const UNNAMED_MISSING = /The specified module could not be found/;

/** The library files a loader error says are missing ([] when it names none or says nothing of the kind). */
export function missingLibraries(text: string): string[] {
  const names: string[] = [];
  for (const pattern of [LINUX_MISSING, MAC_MISSING]) {
    for (const match of text.matchAll(pattern)) {
      const name = match[1].split("/").at(-1)!;
      if (!names.includes(name)) names.push(name);
    }
  }
  return names;
}

/** Whether a loader error is about a missing library at all (Windows names none). */
export function isMissingLibrary(text: string): boolean {
  return missingLibraries(text).length > 0 || UNNAMED_MISSING.test(text);
}

/**
 * A reason that names each missing library and where to get it (from native/backends.json), and
 * whether the GPU is merely absent: only when every library named is a driver library.
 */
export function missingLibraryVerdict(text: string, backend: string, pluginPath: string, platform: string): ProbeResult & { ok: false } {
  // The plugin's own path can appear in the message ("failed to load <plugin>: <lib>: cannot open ..."): not the missing one.
  const own = pluginPath.split(/[\\/]/).at(-1);
  const names = missingLibraries(text).filter((n) => n !== own);
  if (names.length === 0) {
    const needs = isGpuBackend(backend) ? backendSpec(backend).needs : undefined;
    return { ok: false, reason: `a library it needs is missing (${text})${needs ? `; the ${backend} plugin needs ${needs}` : ""}`, missing: [] };
  }
  const parts = names.map((name) => {
    const lib = systemLibrary(name, platform);
    return lib ? `${name} is missing: it comes with ${lib.from}` : `${name} is missing`;
  });
  const absent = names.every((name) => systemLibrary(name, platform)?.absentIfMissing === true);
  return {
    ok: false,
    reason: `it needs ${names.length === 1 ? "a library that is" : "libraries that are"} not installed or not on the library path: ${parts.join("; ")}`,
    absent,
    missing: names,
  };
}

interface ProbeReport {
  load: PluginLoadResult;
  devices: string[];
}

function parseReport(stdout: string): ProbeReport | undefined {
  const line = stdout.split("\n").find((l) => l.startsWith(MARK));
  if (!line) return undefined;
  try {
    const found = JSON.parse(line.slice(MARK.length)) as ProbeReport;
    if (typeof found?.load?.loaded !== "boolean" || !Array.isArray(found.devices)) return undefined;
    return found;
  } catch {
    return undefined;
  }
}

/** Turns the child's exit into a verdict with a reason a user can act on. */
export function readProbe(
  child: Pick<SpawnSyncReturns<string>, "status" | "signal" | "error" | "stdout" | "stderr">,
  backend: string,
  timeoutMs: number,
  platform: string = process.platform,
): ProbeResult {
  const code = (child.error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ETIMEDOUT") return { ok: false, reason: `its probe did not finish in ${timeoutMs / 1000} s` };
  if (child.error) return { ok: false, reason: `its probe could not run (${child.error.message})` };
  const detail = errorLine(child.stderr ?? "");
  const suffix = detail ? `: ${detail}` : "";
  if (child.signal) return { ok: false, reason: `its probe was killed by ${child.signal}${suffix}` };
  if (child.status !== 0) {
    if (isMissingLibrary(detail)) return missingLibraryVerdict(detail, backend, "", platform);
    return { ok: false, reason: `its probe exited with code ${child.status}${suffix}` };
  }

  const report = parseReport(child.stdout ?? "");
  if (!report) return { ok: false, reason: "its probe printed no result" };
  const { load } = report;
  if (!load.loaded) {
    const error = load.error ?? "unknown error";
    if (isMissingLibrary(error)) return missingLibraryVerdict(error, backend, load.path, platform);
    return { ok: false, reason: `it does not load: ${error}` };
  }
  // ggml's registry names the backend ("MTL" for Metal); a file named for one backend that
  // registers another is not what its name promises.
  const registered = backendOfRegistryName(load.backend ?? "");
  if (isGpuBackend(backend) && registered !== backend) return { ok: false, reason: `it registers the ${registered || "unnamed"} backend, not ${backend}` };
  const devices = report.devices.map(backendOfRegistryName);
  if (!devices.includes(registered)) {
    const needs = isGpuBackend(registered) ? backendSpec(registered).needs : undefined;
    return { ok: false, absent: true, reason: `it loads but finds no ${registered} device (devices: ${devices.join(", ") || "none"})${needs ? `; it needs ${needs}` : ""}` };
  }
  return { ok: true };
}

/** The line of the child's stderr that says what went wrong: Node's "Error: ..." line, else the last line. */
function errorLine(stderr: string): string {
  const lines = stderr.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /^[A-Za-z]*Error\b.*:/.test(l)) ?? lines.at(-1) ?? "";
}
