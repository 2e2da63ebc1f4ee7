// The one tensor shape the public calls take: [batch, channels, height, width] (NCHW).
export type Shape4 = [n: number, c: number, h: number, w: number];
