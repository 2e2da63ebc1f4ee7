// The GGUF reader's type table (lib/formats/gguf-reader.ts) against ggml's own, through the addon
// (the rest of the GGUF reader and writer is pure TypeScript: unit/gguf.test.ts).
import { describe, expect, it } from "vitest";
import { GGML_TYPES } from "../../lib/formats/gguf-reader.js";
import { native } from "../../lib/native/addon.js";

describe("GGUF writer and reader", () => {
  it("knows the same type sizes as ggml", () => {
    const addon = native(); // outside the try: no addon is a failure, not a skipped type
    for (const [id, t] of GGML_TYPES) {
      let traits;
      try {
        traits = addon.typeTraits(t.name);
      } catch {
        continue; // types that need an importance matrix are not offered by typeTraits
      }
      expect({ id, blockSize: t.blockSize, typeSize: t.typeSize }).toEqual({ id: traits.ggmlType, blockSize: traits.blockSize, typeSize: traits.typeSize });
    }
  });
});
