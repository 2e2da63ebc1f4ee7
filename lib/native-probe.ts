// Test-loads a GPU binary in a child process before this process loads it. A broken GPU build
// (a missing libcudart, a driver older than the toolkit, a Vulkan loader without a driver) can
// abort or crash inside native code during dlopen or device enumeration, where no try/catch
// reaches; in a child that costs one exit code, and the caller falls back to the next binary.
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import type { BinaryVariant, ProbeResult } from "./native-variants.js";

/** GPU initialisation (CUDA context, Vulkan instance) takes seconds at most; a hang is a failure. */
export const PROBE_TIMEOUT_MS = 20_000;

/** Printed before the probe's JSON so that anything else the binary writes to stdout is ignored. */
const MARK = "JSD_PROBE ";

// Runs in the child with the binary's path as argv[1]: load it, ask what it compiled and what
// devices it sees, print one marked line.
const PROBE_SCRIPT = `
const addon = require(process.argv[1]);
const backends = addon.systemInfo().backends;
const devices = addon.listDevices().map((d) => d.backend);
process.stdout.write("\\n${MARK}" + JSON.stringify({ backends, devices }) + "\\n");
`;

export interface ProbeOptions {
  timeoutMs?: number;
  /** The code the child runs instead of the standard probe (tests simulate hangs and crashes with it). */
  script?: string;
}

const cache = new Map<string, ProbeResult>();

/**
 * Whether `path` loads in a fresh Node process and sees at least one device of `variant`.
 * Results are cached for the life of this process: each binary is probed once.
 */
export function probeBinary(path: string, variant: BinaryVariant, options: ProbeOptions = {}): ProbeResult {
  const timeoutMs = options.timeoutMs ?? PROBE_TIMEOUT_MS;
  const script = options.script ?? PROBE_SCRIPT;
  const key = JSON.stringify([path, variant, timeoutMs, script]);
  const cached = cache.get(key);
  if (cached) return cached;
  // Synchronous only because native() is: the first call picks the binary and every later call
  // reuses it, so this blocks once per process (up to the timeout per GPU binary present).
  const child = spawnSync(process.execPath, ["-e", script, path], {
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
  const result = readProbe(child, variant, timeoutMs);
  cache.set(key, result);
  return result;
}

const MISSING_LIBRARY = /cannot open shared object file|Library not loaded|The specified module could not be found/;

/** Turns the child's exit into a verdict with a reason a user can act on. */
export function readProbe(
  child: Pick<SpawnSyncReturns<string>, "status" | "signal" | "error" | "stdout" | "stderr">,
  variant: BinaryVariant,
  timeoutMs: number,
): ProbeResult {
  const code = (child.error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ETIMEDOUT") return { ok: false, reason: `its probe did not finish in ${timeoutMs / 1000} s` };
  if (child.error) return { ok: false, reason: `its probe could not run (${child.error.message})` };
  const detail = errorLine(child.stderr ?? "");
  const suffix = detail ? `: ${detail}` : "";
  if (child.signal) return { ok: false, reason: `its probe was killed by ${child.signal}${suffix}` };
  // A driver or runtime library that is not installed (libcuda.so.1, libvulkan.so.1, ...) means
  // this machine has no such GPU set up, not that the binary is broken.
  if (child.status !== 0) return { ok: false, reason: `its probe exited with code ${child.status}${suffix}`, absent: MISSING_LIBRARY.test(detail) };

  const line = (child.stdout ?? "").split("\n").find((l) => l.startsWith(MARK));
  let found: { backends: string[]; devices: string[] } | undefined;
  try {
    found = line ? (JSON.parse(line.slice(MARK.length)) as { backends: string[]; devices: string[] }) : undefined;
  } catch {
    found = undefined;
  }
  if (!found || !Array.isArray(found.devices) || !Array.isArray(found.backends)) return { ok: false, reason: "its probe printed no result" };
  if (!found.devices.includes(variant)) {
    return {
      ok: false,
      absent: true,
      reason: `it loads but finds no ${variant} device (devices: ${found.devices.join(", ") || "none"}; compiled backends: ${found.backends.join(", ") || "none"})`,
    };
  }
  return { ok: true };
}

/** The line of the child's stderr that says what went wrong: Node's "Error: ..." line, else the last line. */
function errorLine(stderr: string): string {
  const lines = stderr.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /^[A-Za-z]*Error\b.*:/.test(l)) ?? lines.at(-1) ?? "";
}
