// PNG encoding and decoding (lib/image/png*.ts): round trips, text metadata, and malformed files.
// Over 400 lines, and one job: one subject's cases, each short.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { encode as fastPngEncode } from "fast-png";
import { describe, expect, it } from "vitest";
import { JsdError } from "../../lib/errors.js";
import { readSafetensors, toFloat32 } from "../../lib/formats/safetensors.js";
import {
  maskToLatentKeep,
  nearestSourceIndex,
  rgba8ToLuma,
  rgba8ToSignedNchw,
  roundHalfEven,
  unitHwcToRgba8,
  vaeOutputToRgba8,
  vaeOutputToUnitHwc,
} from "../../lib/image/convert.js";
import {
  PNG_JSON_KEYWORD,
  addPngText,
  crc32,
  decodeImage,
  decodeImageBytes,
  encodePng,
  readPngChunks,
  readPngText,
  textChunk,
} from "../../lib/image/png.js";

const scratch = mkdtempSync(join(tmpdir(), "jsd-png-"));
const pipelineDir = new URL("../fixtures/reference/pipeline/", import.meta.url).pathname;
const schedulersJson = new URL("../fixtures/reference/schedulers.json", import.meta.url).pathname;

function testImage(width: number, height: number, alpha = false): Uint8Array {
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = 4 * (y * width + x);
      rgba[p] = (x * 37 + y * 11) & 255;
      rgba[p + 1] = (x * 5 + y * 53 + 7) & 255;
      rgba[p + 2] = (x * y + 101) & 255;
      rgba[p + 3] = alpha ? (x * 13 + y * 29) & 255 : 255;
    }
  }
  return rgba;
}

async function expectBadFile(fn: () => unknown, pattern?: RegExp): Promise<void> {
  try {
    await fn();
  } catch (error) {
    expect(error).toBeInstanceOf(JsdError);
    expect((error as JsdError).code).toBe("JSD_BAD_FILE");
    if (pattern) expect((error as Error).message).toMatch(pattern);
    return;
  }
  throw new Error("expected a JSD_BAD_FILE error");
}

/** A raw chunk with its length and CRC. */
function rawChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  Buffer.from(data).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function chunkTypes(png: Uint8Array): string[] {
  return readPngChunks(png).map((c) => c.type);
}

const pythonOk = spawnSync("python3", ["-c", "import zlib"], { stdio: "ignore" }).status === 0;
const pngcheckOk = spawnSync("pngcheck", ["-h"], { stdio: "ignore" }).error === undefined;

describe("crc32", () => {
  it("is the standard CRC-32", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(new TextEncoder().encode("IEND"))).toBe(0xae426082);
  });
});

describe("encodePng / decodeImage round trip", () => {
  it("keeps every pixel of an opaque image, written as RGB", () => {
    const rgba = testImage(67, 45);
    const png = encodePng(rgba, 67, 45);
    expect(png[25]).toBe(2); // IHDR colour type: truecolour, no alpha
    const back = decodeImageBytes(png);
    expect([back.width, back.height, back.hasAlpha]).toEqual([67, 45, false]);
    expect(Buffer.from(back.rgba).equals(Buffer.from(rgba))).toBe(true);
  });

  it("keeps alpha when it is not all 255, and takes a Uint8ClampedArray", () => {
    const rgba = new Uint8ClampedArray(testImage(16, 9, true));
    const png = encodePng(rgba, 16, 9);
    expect(png[25]).toBe(6); // RGBA
    const back = decodeImageBytes(png);
    expect(back.hasAlpha).toBe(true);
    expect(Buffer.from(back.rgba).equals(Buffer.from(rgba))).toBe(true);
  });

  it("decodes a file from a path, and reports missing files", async () => {
    const path = join(scratch, "rt.png");
    writeFileSync(path, encodePng(testImage(8, 8), 8, 8));
    const back = await decodeImage(path);
    expect(back.width).toBe(8);
    expect(back.rgba).toEqual(testImage(8, 8));
    await expect(decodeImage(join(scratch, "missing.png"))).rejects.toMatchObject({ code: "JSD_NOT_FOUND" });
  });

  it("converts other colour types and bit depths to RGBA8", () => {
    const w = 5;
    const h = 3;
    // 16-bit RGB: high byte.
    const rgb16 = new Uint16Array(w * h * 3).map((_, i) => i * 1000 + 255);
    let back = decodeImageBytes(fastPngEncode({ width: w, height: h, data: rgb16, depth: 16, channels: 3 }));
    expect(back.rgba[0]).toBe(255 >> 8);
    expect(back.rgba[4]).toBe((3 * 1000 + 255) >> 8);
    expect(back.rgba[3]).toBe(255);
    // 8-bit grey + alpha.
    const ga = new Uint8Array(w * h * 2).map((_, i) => i * 7);
    back = decodeImageBytes(fastPngEncode({ width: w, height: h, data: ga, depth: 8, channels: 2 }));
    expect(Array.from(back.rgba.slice(4, 8))).toEqual([14, 14, 14, 21]);
    expect(back.hasAlpha).toBe(true);
    // 1-bit grey, packed rows (5 pixels -> 1 byte per row).
    const bits = Uint8Array.of(0b10100000, 0b01011000, 0b11111000);
    back = decodeImageBytes(fastPngEncode({ width: w, height: h, data: bits, depth: 1, channels: 1 }));
    const grey = Array.from({ length: w * h }, (_, p) => back.rgba[4 * p]);
    expect(grey).toEqual([255, 0, 255, 0, 0, 0, 255, 0, 255, 255, 255, 255, 255, 255, 255]);
    // RGB with a tRNS colour key: that colour becomes transparent.
    const rgb = Uint8Array.of(10, 20, 30, 40, 50, 60, 10, 20, 30);
    const plain = fastPngEncode({ width: 3, height: 1, data: rgb, depth: 8, channels: 3 });
    const keyed = Buffer.concat([plain.subarray(0, 33), rawChunk("tRNS", Uint8Array.of(0, 10, 0, 20, 0, 30)), plain.subarray(33)]);
    back = decodeImageBytes(keyed);
    expect(Array.from(back.rgba)).toEqual([10, 20, 30, 0, 40, 50, 60, 255, 10, 20, 30, 0]);
    expect(back.hasAlpha).toBe(true);
    // 4-bit palette with transparency. (fast-png's encoder writes tRNS only for the non-opaque
    // entries, so they have to come first in the palette for the file to mean what we say.)
    const palette = [
      [0, 255, 0, 128],
      [0, 0, 255, 0],
      [255, 0, 0, 255],
    ];
    const idx = Uint8Array.of(0x01, 0x20, 0x22, 0x10); // rows [0, 1, 2] and [2, 2, 1], 2 bytes each
    back = decodeImageBytes(fastPngEncode({ width: 3, height: 2, data: idx, depth: 4, channels: 1, palette }));
    expect(Array.from(back.rgba)).toEqual([
      0, 255, 0, 128, 0, 0, 255, 0, 255, 0, 0, 255,
      255, 0, 0, 255, 255, 0, 0, 255, 0, 0, 255, 0,
    ]);
    expect(back.hasAlpha).toBe(true);
  });
});

describe("PNG text metadata", () => {
  const parameters =
    "富士山と桜、浮世絵\nNegative prompt: 低画質\nSteps: 20, Sampler: PNDM, CFG scale: 7.5, Seed: 3, Size: 64x64, Model: rinna/japanese-stable-diffusion";
  const json = { prompt: "猫の肖像画 油絵", seed: 3, steps: 20, scheduler: "PNDM", nested: { emoji: "🐱", ok: true } };

  it("writes parameters and JSON as iTXt when not Latin-1, and reads them back", () => {
    const png = encodePng(testImage(8, 8), 8, 8, { parameters, json, Software: "japanese-stable-diffusion 0.1.0" });
    const text = readPngText(png);
    expect(text.parameters).toBe(parameters);
    expect(JSON.parse(text[PNG_JSON_KEYWORD])).toEqual(json);
    expect(text.Software).toBe("japanese-stable-diffusion 0.1.0");
    // Text right after IHDR, pixels unchanged.
    expect(chunkTypes(png)).toEqual(["IHDR", "iTXt", "iTXt", "tEXt", "IDAT", "IEND"]);
    expect(decodeImageBytes(png).rgba).toEqual(testImage(8, 8));
  });

  it("uses tEXt for Latin-1 text (like Pillow's add_text)", () => {
    const png = encodePng(testImage(2, 2), 2, 2, { parameters: "a cat, café", other: { n: 1 }, skipped: undefined });
    expect(chunkTypes(png)).toEqual(["IHDR", "tEXt", "tEXt", "IDAT", "IEND"]);
    expect(readPngText(png)).toEqual({ parameters: "a cat, café", other: '{"n":1}' });
  });

  it("reads zTXt and compressed iTXt written by other tools", () => {
    const base = encodePng(testImage(2, 2), 2, 2);
    const ztxt = Buffer.concat([Buffer.from("Comment\0\0", "latin1"), deflateSync(Buffer.from("zipped é", "latin1"))]);
    const itxt = Buffer.concat([Buffer.from("Title\0\x01\x00ja\0題名\0", "utf8"), deflateSync(Buffer.from("圧縮された題名", "utf8"))]);
    const png = Buffer.concat([base.subarray(0, 33), rawChunk("zTXt", ztxt), rawChunk("iTXt", itxt), base.subarray(33)]);
    expect(readPngText(png)).toEqual({ Comment: "zipped é", Title: "圧縮された題名" });
    expect(decodeImageBytes(png).width).toBe(2);
  });

  it("adds text to an existing PNG", () => {
    const png = addPngText(encodePng(testImage(3, 3), 3, 3), { parameters: "赤い丸" });
    expect(readPngText(png)).toEqual({ parameters: "赤い丸" });
    expect(decodeImageBytes(png).rgba).toEqual(testImage(3, 3));
  });

  it("rejects bad keywords and text", () => {
    const img = testImage(1, 1);
    for (const keyword of ["", " lead", "trail ", "two  spaces", "x".repeat(80), "改行", "tab\t"]) {
      expect(() => encodePng(img, 1, 1, { [keyword]: "v" })).toThrow(/keyword/);
    }
    expect(() => textChunk("k", "nul\0")).toThrow(/NUL/);
    expect(() => textChunk("k", "猫\ud800")).toThrow(/surrogate/);
    expect(() => encodePng(img, 1, 1, { parameters: 3 as unknown as string })).toThrow(TypeError);
    expect(() => encodePng(img, 1, 1, { json: 1, jsd: "x" })).toThrow(JsdError);
  });

  it.skipIf(!pythonOk)("is readable by an independent decoder (Python zlib + PNG parsing)", () => {
    const rgba = testImage(13, 7, true);
    const path = join(scratch, "py.png");
    writeFileSync(path, encodePng(rgba, 13, 7, { parameters, json }));
    const script = String.raw`
import json, struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
pos, idat, text = 8, b"", {}
while True:
    (n,) = struct.unpack(">I", data[pos:pos + 4]); typ = data[pos + 4:pos + 8]; body = data[pos + 8:pos + 8 + n]
    assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(typ + body)
    if typ == b"IHDR": w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
    elif typ == b"IDAT": idat += body
    elif typ == b"iTXt":
        k, rest = body.split(b"\0", 1); assert rest[:2] == b"\0\0"; lang, tk, t = rest[2:].split(b"\0", 2); text[k.decode("latin-1")] = t.decode("utf-8")
    elif typ == b"tEXt":
        k, t = body.split(b"\0", 1); text[k.decode("latin-1")] = t.decode("latin-1")
    pos += 12 + n
    if typ == b"IEND": break
raw = zlib.decompress(idat); bpp = 4; stride = w * bpp; rows = []; prev = bytearray(stride); i = 0
for y in range(h):
    f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0; b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line)); prev = line
print(json.dumps({"w": w, "h": h, "depth": depth, "ctype": ctype, "pixels": b"".join(rows).hex(), "text": text}))
`;
    const out = JSON.parse(execFileSync("python3", ["-c", script, path], { encoding: "utf8" }));
    expect([out.w, out.h, out.depth, out.ctype]).toEqual([13, 7, 8, 6]);
    expect(out.pixels).toBe(Buffer.from(rgba).toString("hex"));
    expect(out.text.parameters).toBe(parameters);
    expect(JSON.parse(out.text.jsd)).toEqual(json);
  });

  it.skipIf(!pngcheckOk)("passes pngcheck", () => {
    const path = join(scratch, "check.png");
    writeFileSync(path, encodePng(testImage(64, 64), 64, 64, { parameters, json }));
    const out = execFileSync("pngcheck", ["-v", path], { encoding: "utf8" });
    expect(out).toMatch(/No errors detected/);
    expect(out).toMatch(/chunk iTXt/);
  });
});

describe("bad files", () => {
  const good = encodePng(testImage(16, 16), 16, 16, { parameters: "猫" });

  it("rejects non-PNG bytes, JPEG included", async () => {
    await expectBadFile(() => decodeImageBytes(new Uint8Array(0)), /signature/);
    await expectBadFile(() => decodeImageBytes(new TextEncoder().encode("hello, not an image")), /signature/);
    await expectBadFile(() => decodeImageBytes(Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 16)), /JPEG/);
    await expectBadFile(() => readPngText(Uint8Array.of(1, 2, 3)));
    const path = join(scratch, "not.png");
    writeFileSync(path, "GIF89a....");
    await expectBadFile(() => decodeImage(path), /not\.png/);
  });

  it("rejects truncated files and corrupt chunks", async () => {
    for (const cut of [8, 20, 33, good.length - 30, good.length - 1]) {
      await expectBadFile(() => decodeImageBytes(good.subarray(0, cut)));
      await expectBadFile(() => readPngText(good.subarray(0, cut)));
    }
    // A flipped bit in the pixel data: CRC error.
    const idat = readPngChunks(good).find((c) => c.type === "IDAT")!;
    const flipped = good.slice();
    flipped[idat.offset + 10] ^= 0x40;
    await expectBadFile(() => decodeImageBytes(flipped), /CRC/);
    // A flipped bit in the text chunk: readPngText notices too.
    const textFlip = good.slice();
    textFlip[33 + 9] ^= 1;
    await expectBadFile(() => readPngText(textFlip), /CRC/);
    // Garbage zlib data with a correct CRC.
    const garbage = good.slice();
    garbage.fill(0x55, idat.offset + 8, idat.offset + 8 + idat.data.length);
    const view = new DataView(garbage.buffer);
    view.setUint32(idat.offset + 8 + idat.data.length, crc32(garbage.subarray(idat.offset + 4, idat.offset + 8 + idat.data.length)));
    await expectBadFile(() => decodeImageBytes(garbage));
  });

  it("refuses images over maxPixels", async () => {
    await expectBadFile(() => decodeImageBytes(good, { maxPixels: 255 }), /16x16/);
    expect(decodeImageBytes(good, { maxPixels: 256 }).width).toBe(16);
  });

  it("checks encodePng arguments", () => {
    expect(() => encodePng([1, 2, 3, 4] as unknown as Uint8Array, 1, 1)).toThrow(TypeError);
    expect(() => encodePng(new Uint8Array(8), 1, 1)).toThrow(JsdError);
    expect(() => encodePng(new Uint8Array(0), 0, 0)).toThrow(JsdError);
    expect(() => encodePng(new Uint8Array(4), 1.5, 1)).toThrow(JsdError);
  });
});

describe("float <-> RGBA8 conversions (diffusers 0.8.1)", () => {
  it("rounds half to even like numpy", () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, 2.5001, 254.5].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, 2, 3, 254]);
    // 0.5/255 * 255 lands on a tie in float32 for some values: check against the rule directly.
    const x = Math.fround(2.5 / 255);
    expect(unitHwcToRgba8(Float32Array.of(x, 0, 1), 1, 1)[0]).toBe(roundHalfEven(Math.fround(x * 255)));
    expect(Array.from(unitHwcToRgba8(Float32Array.of(-1, 2, NaN), 1, 1))).toEqual([0, 255, 0, 255]);
  });

  it("reproduces the pipeline's image from its decoded tensor, bit for bit", async () => {
    for (const name of ["pndm_64x64_s20_g7.5", "euler_64x96_s4_g7.5"]) {
      const { tensors } = await readSafetensors(join(pipelineDir, `${name}.safetensors`));
      const decoded = toFloat32(tensors.get("decoded")!);
      const image = toFloat32(tensors.get("image")!);
      const [, , h, w] = tensors.get("decoded")!.shape;
      const ours = vaeOutputToUnitHwc(decoded, w, h);
      expect(Buffer.from(ours.buffer).equals(Buffer.from(image.buffer))).toBe(true);
      const rgba = vaeOutputToRgba8(decoded, w, h);
      for (let p = 0; p < w * h; p++) {
        for (let c = 0; c < 3; c++) expect(rgba[4 * p + c]).toBe(roundHalfEven(Math.fround(image[3 * p + c] * 255)));
      }
      const back = decodeImageBytes(encodePng(rgba, w, h));
      expect(back.rgba).toEqual(rgba);
    }
  });

  it("turns init images into the img2img input, 2*(u8/255)-1 in NCHW float32", async () => {
    const { tensors } = await readSafetensors(join(pipelineDir, "img2img_pndm_64x64_s20_str0.6.safetensors"));
    const init = toFloat32(tensors.get("init_image")!); // [H, W, 3], exactly float32(u8 / 255)
    const [h, w] = tensors.get("init_image")!.shape;
    const rgba = unitHwcToRgba8(init, w, h);
    for (let i = 0; i < init.length; i++) expect(Math.fround(rgba[4 * Math.floor(i / 3) + (i % 3)] / 255)).toBe(init[i]);
    const x = rgba8ToSignedNchw(rgba, w, h);
    expect(x.length).toBe(3 * h * w);
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < h * w; p++) expect(x[c * h * w + p]).toBe(Math.fround(Math.fround(2 * init[3 * p + c]) - 1));
    }
    expect(rgba8ToSignedNchw(Uint8Array.of(0, 255, 128, 7), 1, 1)).toEqual(Float32Array.of(-1, 1, Math.fround(Math.fround(2 * Math.fround(128 / 255)) - 1)));
  });

  it("converts to L like Pillow", () => {
    expect(Array.from(rgba8ToLuma(Uint8Array.of(255, 0, 0, 9, 0, 255, 0, 9, 0, 0, 255, 9, 200, 200, 200, 0, 1, 1, 1, 255), 5, 1))).toEqual([
      76, 150, 29, 200, 1,
    ]);
  });

  it("samples like Pillow's NEAREST resize", () => {
    expect([0, 1, 7].map((i) => nearestSourceIndex(i, 64, 8))).toEqual([4, 12, 60]);
    expect([0, 1, 11].map((i) => nearestSourceIndex(i, 100, 12))).toEqual([4, 12, 95]);
    expect(nearestSourceIndex(0, 1, 1)).toBe(0);
  });
});

describe("inpainting mask at latent resolution (legacy pipeline)", () => {
  for (const name of ["inpaint_pndm_64x64_s20_str0.75", "inpaint_ddim_64x96_s4_str0.75"]) {
    it(`matches the blend in ${name}`, async () => {
      const { tensors } = await readSafetensors(join(pipelineDir, `${name}.safetensors`));
      const mask = toFloat32(tensors.get("mask")!); // [H, W] in [0, 1], k/255, 1 = repaint
      const [h, w] = tensors.get("mask")!.shape;
      // The mask was an 8-bit "L" image; give it to us as an RGBA grey image.
      const rgba = new Uint8Array(w * h * 4);
      for (let p = 0; p < w * h; p++) {
        const u = Math.round(mask[p] * 255);
        expect(Math.fround(u / 255)).toBe(mask[p]);
        rgba.set([u, u, u, 255], 4 * p);
      }
      const { keep, latentWidth: lw, latentHeight: lh } = maskToLatentKeep(rgba, w, h);
      expect([lw, lh]).toEqual([w / 8, h / 8]);
      expect(keep.length).toBe(4 * lw * lh);
      const values = new Set(keep);
      expect(values).toEqual(new Set([1, 0, Math.fround(1 - Math.fround(102 / 255))]));
      // keep == 1 exactly where the mask block is 0.
      for (let y = 0; y < lh; y++) for (let x = 0; x < lw; x++) expect(keep[y * lw + x] === 1).toBe(mask[(8 * y) * w + 8 * x] === 0);

      // After every step, latents = add_noise(init_latents, noise, t) * keep + stepped * (1 - keep).
      // Where keep is 1 that is add_noise(init_latents, noise, t) alone; where keep < 1 it is not.
      const ac: number[] = JSON.parse(readFileSync(schedulersJson, "utf8")).alphas_cumprod;
      const init = toFloat32(tensors.get("init_latents")!);
      const noise = toFloat32(tensors.get("noise")!);
      const steps = toFloat32(tensors.get("step_latents")!);
      const timesteps = toFloat32(tensors.get("timesteps")!);
      const n = init.length;
      let kept = 0;
      let repainted = 0;
      for (let s = 0; s < timesteps.length; s++) {
        const a = Math.fround(ac[timesteps[s]]);
        const sa = Math.fround(Math.sqrt(a));
        const sb = Math.fround(Math.sqrt(Math.fround(1 - a)));
        let maxKeptDiff = 0;
        let maxRepaintDiff = 0;
        for (let i = 0; i < n; i++) {
          const proper = Math.fround(Math.fround(sa * init[i]) + Math.fround(sb * noise[i]));
          const diff = Math.abs(steps[s * n + i] - proper);
          if (keep[i] === 1) {
            maxKeptDiff = Math.max(maxKeptDiff, diff);
            kept++;
          } else {
            maxRepaintDiff = Math.max(maxRepaintDiff, diff);
            repainted++;
          }
        }
        expect(maxKeptDiff).toBeLessThan(1e-5);
        expect(maxRepaintDiff).toBeGreaterThan(1e-2);
      }
      expect(kept).toBeGreaterThan(0);
      expect(repainted).toBeGreaterThan(0);
    });
  }

  it("uses the mask's own size rounded down to 32 and rejects tiny masks", () => {
    const w = 100;
    const h = 70;
    const rgba = new Uint8Array(w * h * 4).fill(255);
    // Paint the pixel that output (0, 0) samples black: floor(0.5 * 100/12) = 4, floor(0.5 * 70/8) = 4.
    rgba.fill(0, 4 * (4 * w + 4), 4 * (4 * w + 4) + 3);
    const { keep, latentWidth, latentHeight } = maskToLatentKeep(rgba, w, h);
    expect([latentWidth, latentHeight]).toEqual([12, 8]);
    expect(keep[0]).toBe(1);
    expect(keep[1]).toBe(0);
    expect(keep[12 * 8]).toBe(1); // channel 1 is a copy
    expect(() => maskToLatentKeep(new Uint8Array(31 * 40 * 4), 31, 40)).toThrow(JsdError);
  });
});
