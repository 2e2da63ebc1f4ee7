// Kernel variants of a weight type: "<type><suffix>" runs the type's own model file and mat-mul,
// in child processes whose environment forces which kernel does the products (the choice is made
// once per process). Only the matrix products change; every other op runs as usual.
import { existsSync } from "node:fs";
import { join } from "node:path";

export const KERNEL_VARIANTS = {
  // The engine's q8_0 kernels of native/kernels/q8_gemm_avx2.cpp, forced by name (JSD_Q8_KERNEL).
  "+avx2": "the best AVX2 table of the engine's q8_0 kernel: q8-avx-vnni where the CPU has AVX-VNNI, else q8-avx2",
  "+avx2-novnni": "the engine's plain AVX2 q8_0 table (q8-avx2)",
  // ggml's own products (JSD_NO_REPACK=1: no engine kernel, no repacking).
  "@ggml": "ggml's own products, with the CPU plugin the engine loads on this CPU",
  "@ggml-avx2": "ggml's own products, with ggml's AVX2 build of its CPU backend (libggml-cpu-haswell.so, JSD_CPU_PLUGIN)",
  // q4_0 on ggml's repacked int8 kernels instead of the engine's q4 tiles (JSD_Q4_GGML=1).
  "@ggml-repack": "q4_0 on ggml's repacked int8 kernels (JSD_Q4_GGML=1), what the engine ran before its own q4 tiles",
};

const SUFFIXES = Object.keys(KERNEL_VARIANTS).sort((a, b) => b.length - a.length);

/** { type, variant }: "q8_0+avx2" -> { type: "q8_0", variant: "+avx2" }; variant null for a plain type. */
export function splitVariant(name) {
  const variant = SUFFIXES.find((s) => name.endsWith(s)) ?? null;
  return { type: variant ? name.slice(0, -variant.length) : name, variant };
}

/**
 * Where ggml's AVX2 CPU plugin is: --ggml-avx2-plugin, else beside the addon (JSD_CPU_VARIANTS=1
 * builds), else in this platform's prebuilds (`npm run prebuild`: the same ggml release).
 */
export function ggmlAvx2Plugin(root, given) {
  if (given) return given;
  const places = [join(root, "build", "Release"), join(root, "prebuilds", `${process.platform}-${process.arch}`)];
  return places.map((dir) => join(dir, "libggml-cpu-haswell.so")).find((file) => existsSync(file)) ?? null;
}

/**
 * The child environment of a type name: { env } (extra variables), or { error } where this CPU or
 * build cannot run the variant. q8Kernels: the q8_0 kernels this CPU runs (diagnostics.q8Kernels()).
 */
export function variantEnv(name, { q8Kernels, avx2Plugin }) {
  const { type, variant } = splitVariant(name);
  if (variant === null) return { env: {} };
  if (variant.startsWith("+")) {
    // The tables hold q8_0 and q4_0 tiles: forcing a table forces both types' products.
    if (type !== "q8_0" && type !== "q4_0") return { error: `${variant} is a q8_0 / q4_0 kernel` };
    const wanted = variant === "+avx2" ? ["q8-avx-vnni", "q8-avx2"] : ["q8-avx2"];
    const kernel = wanted.find((k) => q8Kernels.includes(k));
    return kernel ? { env: { JSD_Q8_KERNEL: kernel } } : { error: `this CPU runs none of ${wanted.join(", ")} (it has: ${q8Kernels.join(", ") || "none"})` };
  }
  if (variant === "@ggml") return { env: { JSD_NO_REPACK: "1" } };
  if (variant === "@ggml-repack") return type === "q4_0" ? { env: { JSD_Q4_GGML: "1" } } : { error: "@ggml-repack is a q4_0 variant" };
  if (!avx2Plugin) {
    return { error: "no AVX2 build of ggml's CPU backend: run `npm run prebuild` or build with JSD_CPU_VARIANTS=1 (libggml-cpu-haswell.so in prebuilds/ or beside the addon), or pass --ggml-avx2-plugin FILE" };
  }
  return { env: { JSD_NO_REPACK: "1", JSD_CPU_PLUGIN: avx2Plugin } };
}

/**
 * The kernel comparisons the mat-mul phase adds by default to the types it measures (issue 18's
 * keys): for q8_0 the engine's AVX2 tables (best, and plain AVX2 without AVX-VNNI) and ggml's AVX2
 * build; for q4_0 the engine's best AVX2 table. Only for types in the run, only names not given.
 */
export function comparisonVariants(types) {
  const bases = new Set(types.map((t) => splitVariant(t).type));
  const wanted = [];
  if (bases.has("q8_0")) wanted.push("q8_0+avx2", "q8_0+avx2-novnni", "q8_0@ggml-avx2");
  if (bases.has("q4_0")) wanted.push("q4_0+avx2");
  return wanted.filter((t) => !types.includes(t));
}
