/** Stable error codes. Every failure a caller can cause carries one of these as `error.code`. */
export type JsdErrorCode =
  | "JSD_INVALID_ARGUMENT"
  | "JSD_NOT_FOUND"
  | "JSD_BAD_MODEL"
  | "JSD_BAD_TOKENIZER"
  | "JSD_BAD_FILE"
  | "JSD_UNSAFE_PICKLE"
  | "JSD_OOM"
  | "JSD_ABORTED"
  | "JSD_CLOSED"
  | "JSD_EXISTS"
  | "JSD_IO"
  | "JSD_NATIVE_UNAVAILABLE"
  /** The model file has no safety checker, and one was asked for (`embedImages()`). */
  | "JSD_NO_SAFETY_CHECKER"
  /** No prebuilt GPU plugin exists for this backend on this platform (`jsd gpu install`). */
  | "JSD_PLUGIN_UNAVAILABLE"
  /** A download from the npm registry failed (network, registry settings, unknown package). */
  | "JSD_DOWNLOAD_FAILED"
  | "JSD_INTERNAL";

export class JsdError extends Error {
  readonly code: JsdErrorCode;

  constructor(code: JsdErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "JsdError";
    this.code = code;
  }
}

/**
 * A bad argument type, with the package's code: still a TypeError (as JavaScript's own checks
 * throw, and as callers test with instanceof), and named so.
 */
export class JsdTypeError extends TypeError {
  readonly code = "JSD_INVALID_ARGUMENT" as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TypeError";
  }
}

/** A bad argument value, with the package's code: still a RangeError. */
export class JsdRangeError extends RangeError {
  readonly code = "JSD_INVALID_ARGUMENT" as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RangeError";
  }
}

/** True for errors raised by this package (from TS or from the native addon). */
export function isJsdError(error: unknown): error is Error & { code: JsdErrorCode } {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && typeof code === "string" && code.startsWith("JSD_");
}

/** The first line of an error's message: enough to say why, inside a message of our own. */
export function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}
