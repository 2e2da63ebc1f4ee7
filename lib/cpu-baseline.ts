// The prebuilt x86-64 binaries are compiled for a baseline (x86-64-v3: AVX2, FMA, F16C, BMI2;
// scripts/prebuild.mjs), not for the user's CPU. On an older CPU the first vector instruction
// would kill the process with SIGILL, so the loader checks the CPU's flags first and explains.
import { readFileSync } from "node:fs";

export const PREBUILD_X64_BASELINE = ["avx2", "fma", "f16c", "bmi2"] as const;

/** The CPU's feature flags from /proc/cpuinfo (Linux), or undefined where they cannot be read. */
export function linuxCpuFlags(): Set<string> | undefined {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("flags"));
    return line ? new Set(line.slice(line.indexOf(":") + 1).trim().split(/\s+/)) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why the binary at `path` cannot run on this CPU, or undefined when it can (or cannot be told):
 * only prebuilt x64 binaries are checked (the flags are read only for them); a local build is
 * compiled for the machine it runs on.
 */
export function prebuildBaselineProblem(path: string, arch: string, readFlags: () => Set<string> | undefined): string | undefined {
  if (arch !== "x64" || !path.split(/[\\/]/).includes("prebuilds")) return undefined;
  const flags = readFlags();
  if (!flags) return undefined;
  const missing = PREBUILD_X64_BASELINE.filter((f) => !flags.has(f));
  if (missing.length === 0) return undefined;
  return (
    `the prebuilt binary ${path} needs a CPU with ${PREBUILD_X64_BASELINE.join(", ").toUpperCase()} (x86-64-v3), ` +
    `and this one lacks ${missing.join(", ").toUpperCase()}; build the addon for this CPU from source with \`npm run build\`` +
    ` (needs cmake, a C++17 compiler and libsentencepiece-dev)`
  );
}
