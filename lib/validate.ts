// The argument checks the public entry points share (generate(), loadModel(), the Model methods,
// the image helpers): one wording for each kind of mistake, and every failure a JsdTypeError
// (wrong type) or JsdRangeError (wrong value), both coded JSD_INVALID_ARGUMENT. The numbers the
// checks compare against are the package's limits (lib/limits.ts), which the engine checks too.
import { JsdError, JsdRangeError, JsdTypeError } from "./errors.js";
import type { Shape4 } from "./shape.js";

/** An integer from min to max (inclusive). */
export function integer(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number") throw new JsdTypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < min || value > max) throw new JsdRangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  return value;
}

/** A finite number. */
export function finite(name: string, value: unknown): number {
  if (typeof value !== "number") throw new JsdTypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isFinite(value)) throw new JsdRangeError(`${name} must be a finite number, got ${value}`);
  return value;
}

/** undefined, or a boolean. */
export function optionalBoolean(name: string, value: unknown): boolean | undefined {
  if (value !== undefined && typeof value !== "boolean") throw new JsdTypeError(`${name} must be a boolean`);
  return value;
}

/** An options object (not null, not a primitive). */
export function optionsObject<T>(name: string, value: T): T {
  if (value === null || typeof value !== "object") throw new JsdTypeError(`${name} must be an object`);
  return value;
}

/** A PNG's IHDR holds 31-bit sides. */
export const PNG_MAX_SIDE = 0x7fffffff;

/** The size of an image in pixels (the image helpers' JsdError, as they have always thrown). */
export function imageSize(width: unknown, height: unknown): void {
  for (const [name, v] of [["width", width], ["height", height]] as const) {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > PNG_MAX_SIDE) {
      throw new JsdError("JSD_INVALID_ARGUMENT", `${name} must be a positive integer, got ${String(v)}`);
    }
  }
}

/** A tensor shape [batch, channels, height, width] of positive integers. */
export function shape4(name: string, value: unknown): Shape4 {
  if (!Array.isArray(value) || value.length !== 4 || !value.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new JsdTypeError(`${name} must be [batch, channels, height, width] of positive integers`);
  }
  return value as Shape4;
}

/** A Float32Array of exactly `length` values. */
export function float32Array(name: string, value: unknown, length: number): Float32Array {
  if (!(value instanceof Float32Array)) throw new JsdTypeError(`${name} must be a Float32Array`);
  if (value.length !== length) throw new JsdRangeError(`${name} holds ${value.length} values; its shape needs ${length}`);
  return value;
}
