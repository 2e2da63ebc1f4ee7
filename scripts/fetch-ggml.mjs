#!/usr/bin/env node
// Puts ggml's source into an ignored cache folder, taken from the npm registry only:
// node-llama-cpp ships llama.cpp (which contains ggml/) as a git bundle inside its tarball.
// We download that tarball with `npm pack` (no dependencies, no install scripts, no prebuilt
// binaries), check it against a pinned sha512 and keep just ggml/ out of the bundle. The pin
// lives in native/backends.json (ggmlRelease).
//
// Idempotent: when the cache holds the pinned version, nothing touches the network.
// Set JSD_GGML_DIR to build against another ggml checkout instead, JSD_GGML_CACHE to move the cache.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * The pinned release (package, version, integrity, bundlePath), from native/backends.json: the
 * GPU plugins the loader accepts must come from this same release, so it is written down once.
 */
export const GGML_SOURCE = JSON.parse(readFileSync(join(root, "native", "backends.json"), "utf8")).ggmlRelease;
export const cacheDir = resolve(process.env.JSD_GGML_CACHE ?? join(root, ".cache", "ggml"));
const stampFile = join(cacheDir, "source.json");
export const ggmlDir = join(cacheDir, "ggml");

class FetchError extends Error {}

function run(cmd, args, options = {}) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20, ...options });
  } catch (error) {
    const stderr = String(error.stderr ?? "").trim().split("\n").slice(-5).join("\n");
    throw new FetchError(`\`${cmd} ${args.join(" ")}\` failed${stderr ? `:\n${stderr}` : ` (${error.message})`}`);
  }
}

function readStamp() {
  try {
    return JSON.parse(readFileSync(stampFile, "utf8"));
  } catch {
    return null;
  }
}

/** The ggml folder to build, fetching it first when the cache lacks the pinned version. */
export function ensureGgml({ log = console.error } = {}) {
  if (process.env.JSD_GGML_DIR) {
    const dir = resolve(process.env.JSD_GGML_DIR);
    if (!existsSync(join(dir, "CMakeLists.txt"))) throw new FetchError(`JSD_GGML_DIR=${dir} holds no CMakeLists.txt`);
    return { dir, commit: "external", source: dir };
  }
  const stamp = readStamp();
  if (stamp && stamp.integrity === GGML_SOURCE.integrity && existsSync(join(ggmlDir, "CMakeLists.txt"))) {
    log(`ggml: using cached source (llama.cpp ${stamp.commit.slice(0, 10)} from ${stamp.package}@${stamp.version})`);
    return { dir: ggmlDir, commit: stamp.commit, source: `${stamp.package}@${stamp.version}` };
  }

  const spec = `${GGML_SOURCE.package}@${GGML_SOURCE.version}`;
  log(`ggml: downloading ${spec} from the npm registry (once; cached in ${cacheDir})`);
  const work = mkdtempSync(join(tmpdir(), "jsd-ggml-"));
  try {
    let packed;
    try {
      packed = JSON.parse(run("npm", ["pack", spec, "--json", "--ignore-scripts", "--pack-destination", work]));
    } catch (error) {
      throw new FetchError(
        `could not download ${spec} from the npm registry. Check your network or npm registry settings ` +
          `(npm config get registry), or point JSD_GGML_DIR at a ggml source folder.\n${error.message}`,
      );
    }
    const tarball = join(work, packed[0].filename);
    const digest = "sha512-" + createHash("sha512").update(readFileSync(tarball)).digest("base64");
    if (digest !== GGML_SOURCE.integrity) {
      throw new FetchError(`${spec} does not match its pinned checksum (got ${digest}); refusing to build from it`);
    }
    run("tar", ["-xzf", tarball, "-C", work, GGML_SOURCE.bundlePath]);
    const clone = join(work, "llama.cpp");
    run("git", ["clone", "--quiet", "--no-checkout", join(work, GGML_SOURCE.bundlePath), clone]);
    run("git", ["-C", clone, "-c", "advice.detachedHead=false", "checkout", "--quiet", "HEAD", "--", "ggml"]);
    const commit = run("git", ["-C", clone, "rev-parse", "HEAD"]).trim();

    // Replace the cache in one rename so an interrupted fetch never leaves half a tree.
    mkdirSync(cacheDir, { recursive: true });
    const staged = join(cacheDir, `.staging-${process.pid}`);
    rmSync(staged, { recursive: true, force: true });
    cpSync(join(clone, "ggml"), staged, { recursive: true });
    rmSync(ggmlDir, { recursive: true, force: true });
    renameSync(staged, ggmlDir);
    const stamp = { package: GGML_SOURCE.package, version: GGML_SOURCE.version, integrity: GGML_SOURCE.integrity, commit };
    writeFileSync(stampFile, JSON.stringify(stamp, null, 2) + "\n");
    log(`ggml: cached llama.cpp ${commit.slice(0, 10)}'s ggml/ in ${ggmlDir}`);
    return { dir: ggmlDir, commit, source: spec };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const { dir } = ensureGgml();
    console.log(dir);
  } catch (error) {
    console.error(`fetch-ggml: ${error.message}`);
    process.exit(1);
  }
}
