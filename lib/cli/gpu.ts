// `jsd gpu install|list|remove`: the GPU plugin cache (lib/native/gpu-install.ts) from the command line.
import { Command } from "commander";
import { createRequire } from "node:module";
import { backendSpec, GPU_BACKENDS } from "../native/backends.js";
import { installGpuPlugin, listFolders, listGpuPlugins, removeGpuPlugin, type GpuPluginListing } from "../native/gpu-install.js";
import { defaultPluginDeps } from "../native/plugin-deps.js";
import { packageRoot } from "../package-root.js";
import { formatBytes, type CliIo } from "./io.js";

/**
 * The addon the loader would pick, for listing the local-build plugins beside it, found without
 * loading it; undefined where none is built.
 */
function builtAddonPath(): string | undefined {
  try {
    return (createRequire(import.meta.url)("node-gyp-build") as { path(dir: string): string }).path(packageRoot);
  } catch {
    return undefined;
  }
}

/** `jsd gpu list` as lines. */
export function listingLines(listing: GpuPluginListing): string[] {
  const lines = [`GPU plugins must come from ggml of node-llama-cpp ${listing.release}; plugin cache: ${listing.cacheDir}`];
  if (listing.disabled) lines.push("JSD_GPU=0 is set: none of them is loaded");
  if (listing.found.length === 0) lines.push("no GPU plugin found");
  for (const entry of listing.found) {
    const version = entry.version ? ` ${entry.version}` : "";
    lines.push(`${entry.backend} (${entry.source}${version}) ${entry.path}: ${entry.problem ? `not usable: ${entry.problem}` : "ok"}`);
  }
  for (const other of listing.otherReleases) lines.push(`kept for other releases: ${other.backend} ${other.version} (${other.path})`);
  lines.push(
    listing.installable.length
      ? `installable here: ${listing.installable.join(", ")} (npx jsd gpu install <backend>); npx jsd doctor test-loads what is found`
      : "node-llama-cpp publishes no GPU plugin for this platform; build one from source (docs/gpu.md)",
  );
  return lines;
}

export function registerGpu(program: Command, io: CliIo): void {
  const gpu = program.command("gpu").description("install, list and remove GPU backend plugins (docs/gpu.md)");
  const backends = GPU_BACKENDS.join(", ");

  gpu
    .command("install")
    .description("download node-llama-cpp's plugin for a GPU backend and keep only the plugin file in the plugin cache")
    .argument("<backend>", backends)
    .option("--from <file.tgz>", "install from a package tarball on disk instead of downloading it")
    .option("--cache-dir <dir>", "plugin cache folder (default: JSD_PLUGIN_DIR or the user's cache folder)")
    .option("--json", "machine-readable output", false)
    .action(async (backend: string, flags: { from?: string; cacheDir?: string; json: boolean }) => {
      const installed = await installGpuPlugin(backend, { from: flags.from, cacheDir: flags.cacheDir });
      if (flags.json) {
        io.stdout.write(`${JSON.stringify(installed)}\n`);
        return;
      }
      const { stamp } = installed;
      io.stdout.write(
        [
          `installed ${stamp.file} (${formatBytes(stamp.size)}, sha256 ${stamp.sha256}) from ${stamp.package}@${stamp.version} into ${installed.path}`,
          `the ${installed.backend} plugin needs ${backendSpec(installed.backend).needs ?? "nothing else"}`,
          "npx jsd doctor shows whether it loads on this machine",
        ].join("\n") + "\n",
      );
    });

  gpu
    .command("list")
    .description("show the GPU plugins found (local build, npm packages, plugin cache) and whether this release can use them")
    .option("--cache-dir <dir>", "plugin cache folder")
    .option("--json", "machine-readable output", false)
    .action((flags: { cacheDir?: string; json: boolean }) => {
      const deps = defaultPluginDeps(packageRoot, builtAddonPath());
      const listing = listGpuPlugins({ ...deps, cacheDir: flags.cacheDir ?? deps.cacheDir, listDir: listFolders });
      io.stdout.write(flags.json ? `${JSON.stringify(listing)}\n` : `${listingLines(listing).join("\n")}\n`);
    });

  gpu
    .command("remove")
    .description("remove a GPU backend's plugin of this release from the plugin cache")
    .argument("<backend>", backends)
    .option("--all-releases", "also remove the plugin folders of other releases", false)
    .option("--cache-dir <dir>", "plugin cache folder")
    .action((backend: string, flags: { allReleases: boolean; cacheDir?: string }) => {
      const removed = removeGpuPlugin(backend, { cacheDir: flags.cacheDir, allReleases: flags.allReleases });
      io.stdout.write(removed.length ? removed.map((dir) => `removed ${dir}\n`).join("") : `no ${backend} plugin in the plugin cache\n`);
    });
}
