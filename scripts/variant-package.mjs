#!/usr/bin/env node
// Turns a GPU prebuild folder into the optional npm package that lib/native-variants.ts looks
// for, and lists that package in the main package.json's optionalDependencies (done at publish
// time, so a git checkout never depends on packages that do not exist yet).
//
//   node scripts/variant-package.mjs prebuilds-cuda/linux-x64 [--out npm-packages] [--add-to package.json]
//
// writes npm-packages/linux-x64-cuda/ = package.json + prebuilds/linux-x64/{node.napi.node, libs}
// and prints that folder. The package's os/cpu fields make npm install it only where it can run.
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const BACKENDS = ["cuda", "vulkan", "metal"];
// Metal exists only on Apple's systems; CUDA has no macOS driver any more.
const PLATFORMS = { cuda: ["linux", "win32"], vulkan: ["linux", "win32"], metal: ["darwin"] };

/** prebuilds-<backend>/<platform>-<arch> → its parts; throws on any other shape. */
export function parseVariantFolder(folder) {
  const tuple = basename(resolve(folder));
  const parent = basename(dirname(resolve(folder)));
  const backend = parent.startsWith("prebuilds-") ? parent.slice("prebuilds-".length) : "";
  const dash = tuple.indexOf("-");
  const platform = dash > 0 ? tuple.slice(0, dash) : "";
  const arch = dash > 0 ? tuple.slice(dash + 1) : "";
  if (!BACKENDS.includes(backend) || !platform || !arch) {
    throw new Error(`${folder}: expected prebuilds-<${BACKENDS.join("|")}>/<platform>-<arch> (what \`npm run prebuild -- --backend <b>\` writes)`);
  }
  if (!PLATFORMS[backend].includes(platform)) throw new Error(`${folder}: there is no ${backend} build for ${platform}`);
  return { backend, platform, arch };
}

/** The variant package's name: the one lib/native-variants.ts resolves. */
export function variantName({ platform, arch, backend }) {
  return `@japanese-stable-diffusion/${platform}-${arch}-${backend}`;
}

/** package.json of a variant package, versioned with the main package (the loader expects the same build). */
export function variantManifest(main, variant) {
  const manifest = {
    name: variantName(variant),
    version: main.version,
    description: `${variant.backend.toUpperCase()} build of ${main.name}'s native addon for ${variant.platform}-${variant.arch}; installed as an optional dependency of ${main.name}, not used on its own`,
    license: main.license,
    os: [variant.platform],
    cpu: [variant.arch],
    files: ["prebuilds"],
    // Scoped packages are private by default on the registry.
    publishConfig: { access: "public" },
  };
  if (main.repository) manifest.repository = main.repository;
  return manifest;
}

/** The main manifest with `name@version` added to optionalDependencies (other fields untouched, keys sorted). */
export function withOptionalDependency(main, name, version) {
  const deps = { ...(main.optionalDependencies ?? {}), [name]: version };
  return { ...main, optionalDependencies: Object.fromEntries(Object.entries(deps).sort(([a], [b]) => a.localeCompare(b))) };
}

/** Writes the package folder and returns its path. */
export function writeVariantPackage(folder, out, main) {
  const variant = parseVariantFolder(folder);
  if (!existsSync(join(folder, "node.napi.node"))) throw new Error(`${folder}: no node.napi.node in it (run npm run prebuild -- --backend ${variant.backend})`);
  const dir = join(out, `${variant.platform}-${variant.arch}-${variant.backend}`);
  rmSync(dir, { recursive: true, force: true });
  const binaries = join(dir, "prebuilds", `${variant.platform}-${variant.arch}`);
  mkdirSync(binaries, { recursive: true });
  for (const file of readdirSync(folder)) {
    if (statSync(join(folder, file)).isFile()) copyFileSync(join(folder, file), join(binaries, file));
  }
  writeFileSync(join(dir, "package.json"), `${JSON.stringify(variantManifest(main, variant), null, 2)}\n`);
  writeFileSync(
    join(dir, "README.md"),
    `# ${variantName(variant)}\n\nThe ${variant.backend} build of [${main.name}](https://www.npmjs.com/package/${main.name})'s native addon for ${variant.platform}-${variant.arch}. ` +
      `${main.name} installs it as an optional dependency, test-loads it in a child process and falls back to its CPU build when it does not work here.\n`,
  );
  return dir;
}

function main(args) {
  const option = (name) => {
    const i = args.indexOf(name);
    if (i < 0) return undefined;
    const value = args[i + 1];
    args.splice(i, 2);
    if (value === undefined) throw new Error(`${name} needs a value`);
    return value;
  };
  const out = resolve(option("--out") ?? join(root, "npm-packages"));
  const addTo = option("--add-to");
  if (args.length !== 1) throw new Error("usage: variant-package.mjs prebuilds-<backend>/<platform>-<arch> [--out dir] [--add-to package.json]");
  const mainPath = addTo ? resolve(addTo) : join(root, "package.json");
  const manifest = JSON.parse(readFileSync(mainPath, "utf8"));
  const dir = writeVariantPackage(resolve(args[0]), out, manifest);
  if (addTo) {
    const variant = parseVariantFolder(args[0]);
    writeFileSync(mainPath, `${JSON.stringify(withOptionalDependency(manifest, variantName(variant), manifest.version), null, 2)}\n`);
  }
  console.log(dir);
}

function runAsScript() {
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

// Run as a script; imported (tests), it only exports the functions above.
if (runAsScript()) {
  try {
    main(process.argv.slice(2));
  } catch (error) {
    console.error(`variant-package: ${error.message}`);
    process.exit(1);
  }
}
