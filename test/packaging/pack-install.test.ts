// The package as users get it: `npm pack`, installed into a fresh project whose PATH has no
// compiler and no cmake, loads its prebuilt binary, the embedded model, and generates an image.
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { GGML_RELEASE } from "../../lib/native/backends.js";
import { lavapipe } from "../helpers/lavapipe.js";

const root = new URL("../..", import.meta.url).pathname;
const prebuild = join(root, "prebuilds", `${process.platform}-${process.arch}`, "node.napi.node");
const npmCli = join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "bin", "npm-cli.js");
const work = mkdtempSync(join(tmpdir(), "jsd-pack-"));
let tarball = "";
let project = "";
let bin = "";
let vulkanTarball = "";
const VULKAN_PACKAGE = `@node-llama-cpp/linux-x64-vulkan@${GGML_RELEASE.version}`;

// Child processes run asynchronously: a minutes-long synchronous call would block the test
// worker's event loop and time out vitest's own messages.
const exec = promisify(execFile);

async function run(args: string[], cwd: string, timeout = 300_000, env: Record<string, string> = {}): Promise<string> {
  // Only node and tar on PATH: no cc, c++, cmake, make or pkg-config.
  try {
    const { stdout } = await exec(process.execPath, args, { cwd, encoding: "utf8", timeout, maxBuffer: 64 << 20, env: { ...process.env, PATH: bin, npm_config_ignore_scripts: "false", ...env } });
    return stdout;
  } catch (error) {
    const e = error as { code?: unknown; stderr?: string; stdout?: string };
    throw new Error(`${args.join(" ")} failed (${String(e.code)}):\n${e.stderr ?? ""}\n${e.stdout ?? ""}`);
  }
}

beforeAll(async () => {
  if (!existsSync(prebuild)) await exec("npm", ["run", "prebuild"], { cwd: root, timeout: 900_000, maxBuffer: 64 << 20 });
  bin = join(work, "bin");
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, "node"));
  symlinkSync("/bin/tar", join(bin, "tar"));
  symlinkSync("/bin/gzip", join(bin, "gzip"));
  if (lavapipe) {
    // The Vulkan plugin's package, fetched here from the registry; the install below takes the file.
    const vulkan = JSON.parse((await exec("npm", ["pack", VULKAN_PACKAGE, "--json", "--pack-destination", work], { cwd: work, encoding: "utf8", maxBuffer: 64 << 20 })).stdout) as Array<{ filename: string }>;
    vulkanTarball = join(work, vulkan[0].filename);
  }
  const packed = JSON.parse((await exec("npm", ["pack", "--json", "--pack-destination", work], { cwd: root, encoding: "utf8", maxBuffer: 64 << 20 })).stdout) as Array<{
    filename: string;
    files: Array<{ path: string; size: number }>;
  }>;
  tarball = join(work, packed[0].filename);
  writeFileSync(join(work, "files.json"), JSON.stringify(packed[0].files));
  project = join(work, "app");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", type: "module", private: true }));
}, 900_000);

describe("npm pack + install without a compiler", () => {
  it("packs the prebuilt binary, the compiled TS and the embedded model, and nothing else of size", () => {
    const files = JSON.parse(readFileSync(join(work, "files.json"), "utf8")) as Array<{ path: string; size: number }>;
    const paths = files.map((f) => f.path);
    expect(paths).toContain(`prebuilds/${process.platform}-${process.arch}/node.napi.node`);
    expect(paths).toContain("dist/index.js");
    expect(paths).toContain("dist/cli/main.js");
    expect(paths).toContain("models/tiny-jsd-shapes.gguf");
    expect(paths.some((p) => p.startsWith("test/") || p.startsWith(".cache/") || p.startsWith("build/"))).toBe(false);
    const big = files.filter((f) => f.size > 1 << 20).map((f) => f.path).sort();
    expect(big.every((p) => p.startsWith("prebuilds/") || p === "models/tiny-jsd-shapes.gguf")).toBe(true);
  });

  it("installs from the tarball and generates with the prebuilt binary", async () => {
    expect(spawnSync("/bin/sh", ["-c", "command -v cc c++ g++ cmake"], { env: { PATH: bin }, encoding: "utf8" }).stdout.trim()).toBe("");
    await run([npmCli, "install", "--no-audit", "--no-fund", tarball], project, 600_000);
    writeFileSync(
      join(project, "main.js"),
      `import { loadModel, systemInfo } from "japanese-stable-diffusion";
       import { writeFileSync } from "node:fs";
       const model = await loadModel(undefined, { threads: 1 });
       const [image] = await model.generate({ prompt: "白い背景に赤い丸", steps: 4, seed: 1 });
       writeFileSync("out.png", image.png);
       console.log(JSON.stringify({ width: image.width, version: systemInfo().version }));
       await model.close();`,
    );
    const out = JSON.parse((await run(["main.js"], project)).trim());
    expect(out.width).toBe(64);
    expect(readFileSync(join(project, "out.png")).subarray(1, 4).toString()).toBe("PNG");
    // The binary in use is the packed prebuild (the installed package has no build/ folder).
    expect(existsSync(join(project, "node_modules", "japanese-stable-diffusion", "build"))).toBe(false);
    const cli = join(project, "node_modules", "japanese-stable-diffusion", "dist", "cli", "main.js");
    expect(await run([cli, "generate", "日の丸", "--steps", "2", "--seed", "2", "-o", "cli.png", "-q"], project)).toMatch(/cli\.png {2}seed 2 {2}64x64/);
  });

  it.skipIf(!lavapipe)("installs the Vulkan plugin without a compiler (jsd gpu install) and generates on lavapipe", async () => {
    const cli = join(project, "node_modules", "japanese-stable-diffusion", "dist", "cli", "main.js");
    const env = { JSD_PLUGIN_DIR: join(work, "plugins"), GGML_VK_VISIBLE_DEVICES: "0" };
    await run([cli, "gpu", "install", "vulkan", "--from", vulkanTarball], project, 300_000, env);
    writeFileSync(
      join(project, "vulkan.js"),
      `import { loadModel } from "japanese-stable-diffusion";
       const model = await loadModel(undefined, { backend: "vulkan" });
       const [image] = await model.generate({ prompt: "白い背景に赤い丸", steps: 2, seed: 1 });
       console.log(JSON.stringify({ width: image.width, backends: model.memory().map((m) => m.backend) }));
       await model.close();`,
    );
    const out = JSON.parse((await run(["vulkan.js"], project, 300_000, env)).trim().split("\n").at(-1)!);
    expect(out).toEqual({ width: 64, backends: ["vulkan", "vulkan", "vulkan"] });
  });
});
