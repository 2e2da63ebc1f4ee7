// Mat-mul shapes taken from SD v1's UNet for ggml's mul_mat throughput per weight type:
// weights [k, m] (k = row length, m = output channels) times f32 activations [k, n] (n = pixels
// or tokens of one image, batch 1). Convolutions are the im2col form (k = 9 · in channels).
export const MATMUL_SHAPES = [
  { name: "conv3x3 320ch @64x64", short: "conv320", m: 320, k: 2880, n: 4096 },
  { name: "conv3x3 640ch @32x32", short: "conv640", m: 640, k: 5760, n: 1024 },
  { name: "conv3x3 1280ch @16x16", short: "conv1280", m: 1280, k: 11520, n: 256 },
  { name: "linear 320 @64x64", short: "lin320", m: 320, k: 320, n: 4096 },
  { name: "linear 1280 @16x16", short: "lin1280", m: 1280, k: 1280, n: 256 },
  { name: "ff GEGLU 1280 @16x16", short: "ff1280", m: 10240, k: 1280, n: 256 },
  { name: "ff out 5120->1280 @16x16", short: "ffout1280", m: 1280, k: 5120, n: 256 },
];
