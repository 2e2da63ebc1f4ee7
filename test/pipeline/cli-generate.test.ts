// The `jsd` command line as a user runs it: spawned processes on the compiled package.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeImageBytes, readPngText } from "../../lib/image/png.js";
import { readCases } from "../../lib/parity/cases.js";
import { pipelineCaseInput } from "../../lib/parity/pipeline.js";
import { referenceCases, tinySafetyModel } from "../helpers/models.js";

const cli = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const built = existsSync(cli) && existsSync(new URL("../../models/tiny-jsd-shapes.gguf", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "jsd-cli-"));

function jsd(...args: string[]) {
  const result = spawnSync(process.execPath, [cli, ...args], { cwd: work, encoding: "utf8", timeout: 120_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe.skipIf(!built)("jsd generate", () => {
  it("writes a PNG with its parameters, prints the seed, and never overwrites", () => {
    const first = jsd("generate", "白い背景に赤い丸", "--seed", "1", "--steps", "4", "-o", "x.png");
    expect(first.code).toBe(0);
    expect(first.stdout).toBe("x.png  seed 1  64x64\n");
    const png = readFileSync(join(work, "x.png"));
    expect(readPngText(png).parameters).toMatch(/^白い背景に赤い丸\nSteps: 4, Sampler: PNDM, CFG scale: 7.5, Seed: 1, Size: 64x64/);
    const second = jsd("generate", "白い背景に赤い丸", "--seed", "1", "--steps", "4", "-o", "x.png");
    expect(second.code).toBe(0);
    expect(second.stdout).toBe("x-1.png  seed 1  64x64\n");
    expect(readFileSync(join(work, "x.png"))).toEqual(png); // untouched
    expect(readFileSync(join(work, "x-1.png"))).toEqual(png); // same seed, same image
    const lean = jsd("generate", "白い背景に赤い丸", "--seed", "1", "--steps", "4", "-o", "x.png", "--low-memory");
    expect(lean.code).toBe(0);
    expect(readFileSync(join(work, "x-2.png"))).toEqual(png); // --low-memory changes memory, not pixels
  });

  it("--force overwrites; --json prints one machine-readable line per image", () => {
    writeFileSync(join(work, "y.png"), "old");
    const r = jsd("generate", "青い背景に黄色い星", "--steps", "2", "-n", "2", "-o", "y.png", "--json", "--force");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines.map((l) => l.path)).toEqual(["y.png", "y-1.png"]);
    expect(lines[0]).toMatchObject({ prompt: "青い背景に黄色い星", steps: 2, width: 64, height: 64, batchIndex: 0, scheduler: "pndm" });
    expect(lines[0].seed).toMatch(/^\d+$/);
    expect(lines[1].seed).toBe(lines[0].seed);
    expect(readFileSync(join(work, "y.png")).subarray(1, 4).toString()).toBe("PNG");
  });

  it("prints plain progress lines when stderr is not a terminal", () => {
    const r = jsd("generate", "赤い丸", "--steps", "10", "-o", "p.png", "--seed", "3");
    expect(r.stderr).toMatch(/^generating step 1\/11 .* it\/s .*ETA/m);
    expect(r.stderr).toMatch(/^generating step 11\/11 /m);
    expect(r.stderr).not.toMatch(/\x1b\[/); // no terminal escapes
  });

  it("fails with one line and a non-zero status on bad flags and bad inputs", () => {
    const cases: Array<[string[], RegExp]> = [
      [["generate", "x", "--steps", "0"], /--steps must be an integer from 1 to 1000/],
      [["generate", "x", "--size", "100x64"], /multiples of 8/],
      [["generate", "x", "--scheduler", "plms"], /choose one of pndm/],
      [["generate", "x", "--seed", "-3"], /seed/],
      [["generate", "x", "--guidance", "abc"], /--guidance must be a number/],
      [["generate", "x", "--backend", "cuda"], /backend 'cuda' is not available on this machine \(available: cpu\); `npx jsd doctor` shows which GPU plugins/],
      [["generate", "x", "--backend", "tpu"], /argument 'tpu' is invalid. Allowed choices are auto, cpu, cuda, vulkan, metal/],
      [["generate", "x", "--backend", "cpu", "--device", "3"], /backend 'cpu' has 1 device\(s\); device 3 does not exist/],
      [["generate", "x", "--model", "missing.gguf"], /cannot open model file .*\(JSD_NOT_FOUND\)/],
      [["generate", "x", "--mask", "m.png"], /mask needs initImage/],
      [["generate", "x", "--init-image", "nope.png"], /JSD_NOT_FOUND|no such file/i],
      [["frobnicate"], /unknown command 'frobnicate'/],
    ];
    for (const [args, message] of cases) {
      const r = jsd(...args);
      expect(r.code, args.join(" ")).not.toBe(0);
      expect(r.stderr, args.join(" ")).toMatch(message);
    }
  });
});

// A full disk and a read-only folder, made with tmpfs mounts (needs root, as CI runs; skipped otherwise).
function tryMount(dir: string, options: string): boolean {
  mkdirSync(dir, { recursive: true });
  return spawnSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]).status === 0;
}

describe.skipIf(!built)("jsd generate with a model that has a safety checker", () => {
  it("says which image the checker flagged and writes it black; --no-safety-checker turns it off", async () => {
    const model = await tinySafetyModel("f32");
    // The reference case pndm_64x96_s4_g7.5_neg is one the reference checker flags.
    const [c] = await readCases(join(referenceCases, "pipeline", "pndm_64x96_s4_g7.5_neg.safetensors"));
    const o = pipelineCaseInput(c);
    const args = ["generate", o.prompt, "--negative", o.negativePrompt, "--model", model, "--seed", String(o.seed), "--steps", String(o.steps), "--size", `${o.width}x${o.height}`, "--scheduler", "pndm"];
    const on = jsd(...args, "-o", "checked.png");
    expect(on.code, on.stderr).toBe(0);
    expect(on.stdout).toMatch(/^checked\.png  seed \d+  96x64  flagged by the safety checker: written black\n$/);
    const checked = decodeImageBytes(readFileSync(join(work, "checked.png")));
    expect(checked.rgba.every((v, i) => v === (i % 4 === 3 ? 255 : 0))).toBe(true);
    expect(readPngText(readFileSync(join(work, "checked.png"))).parameters).toMatch(/Safety checker: flagged/);
    const off = jsd(...args, "--no-safety-checker", "-o", "unchecked.png");
    expect(off.stdout).toMatch(/^unchecked\.png  seed \d+  96x64\n$/);
    expect(readPngText(readFileSync(join(work, "unchecked.png"))).parameters).toMatch(/Safety checker: off/);
    expect(decodeImageBytes(readFileSync(join(work, "unchecked.png"))).rgba.some((v, i) => i % 4 !== 3 && v !== 0)).toBe(true);
  });
});

describe.skipIf(!built)("jsd generate on a full disk or a read-only folder", () => {
  it("fails with a clear error and leaves nothing behind", () => {
    const full = join(work, "full");
    const readonly = join(work, "readonly");
    if (!tryMount(full, "size=4k") || !tryMount(readonly, "ro,size=64k")) return; // not root: nothing to test here
    try {
      const a = jsd("generate", "赤い丸", "--steps", "2", "-o", join(full, "x.png"));
      expect(a.code).toBe(1);
      expect(a.stderr).toMatch(/cannot write .*x\.png: the disk is full \(JSD_IO\)/);
      expect(readdirSync(full)).toEqual([]);
      const b = jsd("generate", "赤い丸", "--steps", "2", "-o", join(readonly, "x.png"));
      expect(b.code).toBe(1);
      expect(b.stderr).toMatch(/cannot write .*x\.png: the folder is not writable \(JSD_IO\)/);
      expect(readdirSync(readonly)).toEqual([]);
    } finally {
      spawnSync("umount", [full]);
      spawnSync("umount", [readonly]);
    }
  });
});

describe.skipIf(!built)("jsd tokens", () => {
  it("lists the pieces, and in extended mode marks chunk boundaries and weights", () => {
    const plain = jsd("tokens", "白い背景に赤い丸");
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/^reference mode: 5 tokens \/ 76/);
    expect(plain.stdout).toMatch(/▁白い/);
    const extended = jsd("tokens", "（赤い丸：1.3） BREAK 青い背景", "--prompt-mode", "extended", "--ids");
    expect(extended.code).toBe(0);
    expect(extended.stdout).toMatch(/2 chunks of 75/);
    expect(extended.stdout).toMatch(/── chunk 1\/2 .* ends at BREAK ──/);
    expect(extended.stdout).toMatch(/×1\.3/);
    const json = JSON.parse(jsd("tokens", "赤い丸", "--json").stdout);
    expect(json).toMatchObject({ mode: "reference", pieces: ["▁赤い", "丸"], count: 2, limit: 76 });
  });

  it("generate --prompt-mode extended records the mode in the PNG", () => {
    const r = jsd("generate", "（赤い丸：1.2）", "--prompt-mode", "extended", "--steps", "2", "--seed", "5", "-o", "e.png", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ promptMode: "extended", droppedTokens: 0 });
    expect(readPngText(readFileSync(join(work, "e.png"))).parameters).toMatch(/Prompt mode: extended/);
  });
});

describe.skipIf(!built)("jsd help, version and doctor", () => {
  it("--help lists the commands; generate --help lists its options", () => {
    const top = jsd("--help");
    expect(top.code).toBe(0);
    for (const command of ["generate", "convert", "info", "tokens", "doctor"]) expect(top.stdout).toContain(command);
    const gen = jsd("generate", "--help");
    for (const flag of ["--output", "--negative", "--steps", "--guidance", "--scheduler", "--seed", "--size", "--count", "--init-image", "--strength", "--mask", "--model", "--threads", "--backend", "--json", "--force", "--prompt-mode"]) {
      expect(gen.stdout).toContain(flag);
    }
  });

  it("--version prints the package version", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    expect(jsd("--version").stdout.trim()).toBe(pkg.version);
  });

  it("doctor prints the build, backends and CPU features", () => {
    const r = jsd("doctor");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/native addon: loaded \(ggml \d+\.\d+\.\d+/);
    expect(r.stdout).toMatch(/backends: .*CPU/);
    const json = JSON.parse(jsd("doctor", "--json").stdout);
    expect(json.backends).toContain("CPU");
    expect(json.defaultModel.present).toBe(true);
  });
});
