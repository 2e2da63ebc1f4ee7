// Analytic FLOP counts (2 × multiply-accumulates) of SD v1's UNet and VAE decoder, from their
// diffusers configs (diffusers 0.8.1 UNet2DConditionModel / AutoencoderKL, as JSD ships them).
//
// Counted: every convolution, every linear layer (1x1 projections included) and the two matmuls
// of every attention (Q·Kᵀ and softmax·V). Not counted: biases, norms, activations, softmax,
// residual adds, up-sampling copies: all O(elements), a fraction of a percent of the total.

/** 2·MACs of a k×k convolution producing an h×w map (stride already applied to h, w). */
function conv(h, w, cin, cout, k) {
  return 2 * h * w * cout * cin * k * k;
}

/** 2·MACs of a linear layer applied to `tokens` rows. */
function linear(tokens, cin, cout) {
  return 2 * tokens * cin * cout;
}

/** 2·MACs of Q·Kᵀ plus softmax·V over all heads: queries × keys × channels, twice. */
function attention(queries, keys, channels) {
  return 2 * (2 * queries * keys * channels);
}

class Counter {
  constructor() {
    this.total = 0;
    this.parts = {};
  }
  add(part, flops) {
    this.total += flops;
    this.parts[part] = (this.parts[part] ?? 0) + flops;
  }
}

function resnet(c, h, w, cin, cout, tembChannels) {
  c.add("conv", conv(h, w, cin, cout, 3));
  if (tembChannels) c.add("linear", linear(1, tembChannels, cout));
  c.add("conv", conv(h, w, cout, cout, 3));
  if (cin !== cout) c.add("conv", conv(h, w, cin, cout, 1));
}

/** Transformer2DModel with one BasicTransformerBlock (self-attention, cross-attention, GEGLU feed-forward). */
function transformer(c, h, w, ch, textLength, textDim) {
  const n = h * w;
  c.add("linear", linear(n, ch, ch)); // proj_in (a 1x1 conv in SD v1)
  // attn1: q, k, v, out
  c.add("linear", 4 * linear(n, ch, ch));
  c.add("attention", attention(n, n, ch));
  // attn2: q and out on the image tokens, k and v on the text states
  c.add("linear", 2 * linear(n, ch, ch));
  c.add("linear", 2 * linear(textLength, textDim, ch));
  c.add("attention", attention(n, textLength, ch));
  // ff: GEGLU (ch -> 2·4ch), then 4ch -> ch
  c.add("linear", linear(n, ch, 8 * ch));
  c.add("linear", linear(n, 4 * ch, ch));
  c.add("linear", linear(n, ch, ch)); // proj_out
}

/**
 * FLOPs of one UNet evaluation of `batch` latents of latentHeight × latentWidth (batch 2 = one
 * sampling step with classifier-free guidance). Returns { total, parts: { conv, linear, attention } }.
 */
export function unetFlops(config, { latentHeight, latentWidth, batch = 1, textLength = 77, textDim } = {}) {
  const channels = config.block_out_channels;
  const layers = config.layers_per_block;
  const crossDim = textDim ?? config.cross_attention_dim;
  const tembChannels = channels[0] * 4;
  const c = new Counter();
  let h = latentHeight;
  let w = latentWidth;

  // time embedding: Linear(c0, 4c0), Linear(4c0, 4c0)
  c.add("linear", linear(1, channels[0], tembChannels) + linear(1, tembChannels, tembChannels));
  c.add("conv", conv(h, w, config.in_channels, channels[0], 3));

  const skips = [channels[0]];
  let ch = channels[0];
  config.down_block_types.forEach((type, i) => {
    const out = channels[i];
    const cross = type.startsWith("CrossAttn");
    for (let j = 0; j < layers; j++) {
      resnet(c, h, w, j === 0 ? ch : out, out, tembChannels);
      if (cross) transformer(c, h, w, out, textLength, crossDim);
      skips.push(out);
    }
    ch = out;
    if (i < config.down_block_types.length - 1) {
      h = Math.ceil(h / 2);
      w = Math.ceil(w / 2);
      c.add("conv", conv(h, w, out, out, 3)); // Downsample2D: 3x3 stride 2
      skips.push(out);
    }
  });

  // mid block: resnet, transformer, resnet
  const mid = channels[channels.length - 1];
  resnet(c, h, w, mid, mid, tembChannels);
  transformer(c, h, w, mid, textLength, crossDim);
  resnet(c, h, w, mid, mid, tembChannels);

  const reversed = [...channels].reverse();
  ch = mid;
  config.up_block_types.forEach((type, i) => {
    const out = reversed[i];
    const cross = type.startsWith("CrossAttn");
    for (let j = 0; j < layers + 1; j++) {
      const skip = skips.pop();
      resnet(c, h, w, (j === 0 ? ch : out) + skip, out, tembChannels);
      if (cross) transformer(c, h, w, out, textLength, crossDim);
    }
    ch = out;
    if (i < config.up_block_types.length - 1) {
      h *= 2;
      w *= 2;
      c.add("conv", conv(h, w, out, out, 3)); // Upsample2D: nearest ×2, then 3x3
    }
  });
  c.add("conv", conv(h, w, channels[0], config.out_channels, 3));

  const scale = (x) => x * batch;
  return { total: scale(c.total), parts: Object.fromEntries(Object.entries(c.parts).map(([k, v]) => [k, scale(v)])) };
}

/** FLOPs of one VAE decode (post_quant_conv + decoder) of `batch` latents of latentHeight × latentWidth. */
export function vaeDecoderFlops(config, { latentHeight, latentWidth, batch = 1 } = {}) {
  const channels = config.block_out_channels;
  const layers = config.layers_per_block;
  const latent = config.latent_channels;
  const c = new Counter();
  let h = latentHeight;
  let w = latentWidth;
  c.add("conv", conv(h, w, latent, latent, 1)); // post_quant_conv
  const reversed = [...channels].reverse();
  const top = reversed[0];
  c.add("conv", conv(h, w, latent, top, 3));
  // mid: resnet, single-head self-attention (q, k, v, proj), resnet
  resnet(c, h, w, top, top, 0);
  c.add("linear", 4 * linear(h * w, top, top));
  c.add("attention", attention(h * w, h * w, top));
  resnet(c, h, w, top, top, 0);
  let ch = top;
  config.up_block_types.forEach((_, i) => {
    const out = reversed[i];
    for (let j = 0; j < layers + 1; j++) resnet(c, h, w, j === 0 ? ch : out, out, 0);
    ch = out;
    if (i < config.up_block_types.length - 1) {
      h *= 2;
      w *= 2;
      c.add("conv", conv(h, w, out, out, 3));
    }
  });
  c.add("conv", conv(h, w, channels[0], config.out_channels, 3));
  const scale = (x) => x * batch;
  return { total: scale(c.total), parts: Object.fromEntries(Object.entries(c.parts).map(([k, v]) => [k, scale(v)])) };
}
