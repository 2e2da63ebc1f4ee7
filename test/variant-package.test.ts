// scripts/variant-package.mjs: a GPU prebuild folder becomes the optional npm package that the
// loader (lib/native-variants.ts) finds, and the main package.json lists it.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gpuCandidates, variantPackageBinary, variantPackageName } from "../lib/native-variants.js";

const script = new URL("../scripts/variant-package.mjs", import.meta.url).pathname;

const works: string[] = [];
afterAll(() => {
  for (const dir of works) rmSync(dir, { recursive: true, force: true });
});

function prebuildFolder(backend: string, tuple: string, files: Record<string, string>): { work: string; folder: string } {
  const work = mkdtempSync(join(tmpdir(), "jsd-variant-pkg-"));
  works.push(work);
  const folder = join(work, `prebuilds-${backend}`, tuple);
  mkdirSync(folder, { recursive: true });
  for (const [name, body] of Object.entries(files)) writeFileSync(join(folder, name), body);
  return { work, folder };
}

function run(args: string[]) {
  return spawnSync(process.execPath, [script, ...args], { encoding: "utf8" });
}

const mainManifest = {
  name: "japanese-stable-diffusion",
  version: "1.2.3",
  license: "MIT",
  dependencies: { "node-gyp-build": "^4.8.4" },
  optionalDependencies: { "@japanese-stable-diffusion/linux-x64-vulkan": "1.2.3" },
};

describe("variant-package.mjs", () => {
  it("writes a package the loader finds, versioned and restricted like the main package, and lists it there", () => {
    const { work, folder } = prebuildFolder("cuda", "linux-x64", { "node.napi.node": "BINARY", "libsentencepiece.so.0": "LIB" });
    const mainPath = join(work, "package.json");
    writeFileSync(mainPath, JSON.stringify(mainManifest));
    const out = join(work, "npm-packages");
    const r = run([folder, "--out", out, "--add-to", mainPath]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const dir = r.stdout.trim();
    expect(dir).toBe(join(out, "linux-x64-cuda"));

    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    expect(manifest).toMatchObject({
      name: variantPackageName("linux", "x64", "cuda"),
      version: "1.2.3",
      license: "MIT",
      os: ["linux"],
      cpu: ["x64"],
      files: ["prebuilds"],
      publishConfig: { access: "public" },
    });
    expect(readFileSync(variantPackageBinary(dir, "linux", "x64"), "utf8")).toBe("BINARY");
    expect(readFileSync(join(dir, "prebuilds", "linux-x64", "libsentencepiece.so.0"), "utf8")).toBe("LIB");

    // The loader's own lookup finds the binary in the generated package.
    const found = gpuCandidates({ packageRoot: work, platform: "linux", arch: "x64", exists: existsSync, findPackage: (n) => (n === manifest.name ? dir : undefined) });
    expect(found).toEqual([{ variant: "cuda", path: variantPackageBinary(dir, "linux", "x64"), source: "npm package" }]);

    // The main package keeps its fields and gains the CUDA package beside the Vulkan one, sorted.
    const main = JSON.parse(readFileSync(mainPath, "utf8"));
    expect(main.dependencies).toEqual(mainManifest.dependencies);
    expect(Object.entries(main.optionalDependencies)).toEqual([
      ["@japanese-stable-diffusion/linux-x64-cuda", "1.2.3"],
      ["@japanese-stable-diffusion/linux-x64-vulkan", "1.2.3"],
    ]);
  });

  it("refuses a folder without a binary, a backend the platform has no build of, and an unknown layout", () => {
    const empty = prebuildFolder("vulkan", "win32-x64", { "README.txt": "" });
    const r1 = run([empty.folder, "--out", join(empty.work, "out")]);
    expect(r1.status).toBe(1);
    expect(r1.stderr).toMatch(/no node\.napi\.node/);
    expect(existsSync(join(empty.work, "out"))).toBe(false);

    const metal = prebuildFolder("metal", "linux-x64", { "node.napi.node": "" });
    const r2 = run([metal.folder, "--out", join(metal.work, "out")]);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toMatch(/no metal build for linux/);

    const odd = prebuildFolder("opencl", "linux-x64", { "node.napi.node": "" });
    const r3 = run([odd.folder, "--out", join(odd.work, "out")]);
    expect(r3.status).toBe(1);
    expect(r3.stderr).toMatch(/expected prebuilds-<cuda\|vulkan\|metal>\/<platform>-<arch>/);
  });
});
