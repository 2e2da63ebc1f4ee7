// VAE decoding in overlapping tiles, so that a large image needs the decoder's memory for one
// tile only (a 512x512 decode holds ~0.7 GB of activations at once; a 320x320 tile ~0.3 GB).
// Tiles overlap by a margin and are blended with linear ramps, so no seam shows. The decoder's
// mid-block attention sees one tile at a time, so tiled output differs slightly from untiled:
// it is used only above a size threshold or when asked.
import type { DiffusionModel, Shape4 } from "./model-port.js";

export interface VaeTiling {
  /** Tile side in latent pixels (8 image pixels each). */
  tile: number;
  /** Overlap between neighbouring tiles, in latent pixels. */
  overlap: number;
}

// Tiles of at most 320 pixels with at least 64 of overlap: a 512x512 image takes 4 tiles of 288
// (tilePlan: 1.27x the pixels of one decode).
export const DEFAULT_VAE_TILING: VaeTiling = { tile: 40, overlap: 8 };

/** Images with more latent pixels than this (a 384×384 image has 48×48) are decoded in tiles by default. */
export const VAE_TILING_THRESHOLD = 48 * 48;

/** The tiles along one axis: their common side and their start offsets. */
export interface AxisTiles {
  tile: number;
  starts: number[];
}

/**
 * Tiles covering [0, size): the fewest of side at most `maxTile` that overlap by at least
 * `overlap`, shrunk to the smallest side that still covers the range with that many, and spread
 * evenly (the first starts at 0, the last ends at size). A tile's decode costs its pixels, so
 * every latent of overlap beyond the blend's margin is paid for twice (64 latents in tiles of 40:
 * two of 40 overlap by 16, two of 36 by 8).
 */
export function tilePlan(size: number, maxTile: number, overlap: number): AxisTiles {
  if (size <= maxTile) return { tile: size, starts: [0] };
  const step = Math.max(1, maxTile - overlap);
  const count = Math.ceil((size - overlap) / step);
  // count tiles of side t overlapping by `overlap` cover count * t - (count - 1) * overlap.
  const tile = Math.ceil((size + (count - 1) * overlap) / count);
  const starts = Array.from({ length: count }, (_, i) => Math.round((i * (size - tile)) / (count - 1)));
  return { tile, starts };
}

/** Blend weight along one axis of a tile: ramps up over the overlap, except at the image border. */
function ramp(position: number, length: number, margin: number, atStart: boolean, atEnd: boolean): number {
  let w = 1;
  if (!atStart) w = Math.min(w, (position + 0.5) / margin);
  if (!atEnd) w = Math.min(w, (length - position - 0.5) / margin);
  return w;
}

export async function decodeLatentsTiled(model: DiffusionModel, latents: Float32Array, shape: Shape4, tiling: VaeTiling = DEFAULT_VAE_TILING): Promise<Float32Array> {
  const [n, c, h, w] = shape;
  const f = model.vaeScaleFactor;
  const { tile: th, starts: ys } = tilePlan(h, tiling.tile, tiling.overlap);
  const { tile: tw, starts: xs } = tilePlan(w, tiling.tile, tiling.overlap);
  if (th === h && tw === w) return model.decodeLatents(latents, shape);
  const H = h * f;
  const W = w * f;
  const out = new Float32Array(n * 3 * H * W);
  const weight = new Float32Array(H * W);
  const margin = Math.max(1, tiling.overlap * f);
  const tile = new Float32Array(n * c * th * tw);
  for (const y0 of ys) {
    for (const x0 of xs) {
      for (let b = 0; b < n; b++) {
        for (let ch = 0; ch < c; ch++) {
          for (let y = 0; y < th; y++) {
            const src = ((b * c + ch) * h + y0 + y) * w + x0;
            tile.set(latents.subarray(src, src + tw), ((b * c + ch) * th + y) * tw);
          }
        }
      }
      const pixels = await model.decodeLatents(tile, [n, c, th, tw]);
      const PH = th * f;
      const PW = tw * f;
      for (let y = 0; y < PH; y++) {
        const wy = ramp(y, PH, margin, y0 === 0, y0 + th === h);
        for (let x = 0; x < PW; x++) {
          const wgt = wy * ramp(x, PW, margin, x0 === 0, x0 + tw === w);
          const Y = y0 * f + y;
          const X = x0 * f + x;
          weight[Y * W + X] += wgt;
          for (let b = 0; b < n; b++) {
            for (let ch = 0; ch < 3; ch++) out[((b * 3 + ch) * H + Y) * W + X] += wgt * pixels[((b * 3 + ch) * PH + y) * PW + x];
          }
        }
      }
    }
  }
  for (let i = 0; i < H * W; i++) {
    for (let b = 0; b < n; b++) for (let ch = 0; ch < 3; ch++) out[((b * 3 + ch) * H * W) + i] /= weight[i];
  }
  return out;
}
