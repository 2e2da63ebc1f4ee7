// Live previews: latents to a small RGB picture without the VAE. SD v1's four latent channels
// are close to a linear code of colour, so a 4×3 matrix gives a recognisable image at latent
// resolution (1/8 of the picture's sides) for a few multiply-adds per pixel, where a VAE decode
// costs seconds.
import { JsdError } from "../errors.js";

/** A preview picture: RGBA 8-bit, row-major, at latent resolution (the image's width/8 × height/8). */
export interface LatentPreview {
  width: number;
  height: number;
  rgba: Uint8Array;
}

/**
 * SD v1 latent channel → RGB weights (rows: latent channels 0..3; columns: R, G, B), bias 0, for
 * latents in model space (already multiplied by the 0.18215 scaling factor). Source: ComfyUI,
 * comfy/latent_formats.py, class SD15, `latent_rgb_factors`. AUTOMATIC1111's "Approx cheap"
 * preview (modules/sd_vae_approx.py, cheap_approximation) is the same projection with an older,
 * rougher set of coefficients.
 */
export const SD_V1_LATENT_RGB_FACTORS: readonly (readonly [number, number, number])[] = [
  [0.3512, 0.2297, 0.3227],
  [0.325, 0.4974, 0.235],
  [-0.2829, 0.1762, 0.2721],
  [-0.212, -0.2616, -0.7177],
];

export const SD_V1_LATENT_RGB_BIAS: readonly [number, number, number] = [0, 0, 0];

/**
 * One image of a batch of latents [B, 4, h, w] (NCHW, model space) as an h × w RGBA picture:
 * rgb = latent · factors + bias, taken from [-1, 1] to [0, 255] as the VAE's output is, clamped,
 * rounded to the nearest level.
 */
export function latentsToPreview(latents: Float32Array, shape: readonly [number, number, number, number], batchIndex = 0): LatentPreview {
  const [batch, channels, height, width] = shape;
  if (channels !== SD_V1_LATENT_RGB_FACTORS.length) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `latent previews need ${SD_V1_LATENT_RGB_FACTORS.length} latent channels, got ${channels}`);
  }
  if (latents.length !== batch * channels * height * width) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `latents hold ${latents.length} values, not ${shape.join("×")}`);
  }
  if (!Number.isInteger(batchIndex) || batchIndex < 0 || batchIndex >= batch) {
    throw new JsdError("JSD_INVALID_ARGUMENT", `batchIndex ${batchIndex} is outside the batch of ${batch}`);
  }
  const plane = height * width;
  const base = batchIndex * channels * plane;
  const rgba = new Uint8Array(plane * 4);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      let v = SD_V1_LATENT_RGB_BIAS[c];
      for (let k = 0; k < channels; k++) v += latents[base + k * plane + p] * SD_V1_LATENT_RGB_FACTORS[k][c];
      rgba[4 * p + c] = Math.round(Math.min(Math.max((v + 1) / 2, 0), 1) * 255);
    }
    rgba[4 * p + 3] = 255;
  }
  return { width, height, rgba };
}
