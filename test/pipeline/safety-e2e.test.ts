// The safety checker through the whole pipeline, on the overlay model (tiny-jsd's networks with
// tiny-safety-checker): the parity runner passes every stage of every reference case, and
// generate() on the reference pipeline cases decides, per image, as the safety_checker case whose
// `inputs` names that image, with black pixels where it flags one.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel, type Model } from "../../lib/index.js";
import { readCases } from "../../lib/parity/cases.js";
import { pipelineCaseInput } from "../../lib/parity/pipeline.js";
import { formatResult, runCases } from "../../lib/parity/run.js";
import { referenceCases, safetyCheckerCases, tinyModel, tinySafetyModel } from "../helpers/models.js";

let model: Model;
beforeAll(async () => {
  model = await loadModel(await tinySafetyModel("f32"), { backend: "cpu" });
});
afterAll(async () => {
  await model?.close();
});

describe("the safety checker's reference cases", () => {
  it("pass stage by stage in the parity runner (pixel_values ≤ 1e-6, image_embeds ≤ 1e-4, cosines ≤ 1e-5, decisions and images exact)", async () => {
    const cases = await readCases(safetyCheckerCases);
    expect(cases.map((c) => c.kind)).toEqual(cases.map(() => "safety_checker"));
    expect(cases).toHaveLength(4);
    const results = await runCases(model, cases);
    expect(results).toHaveLength(4 * 5);
    const failed = results.filter((r) => r.status !== "PASS");
    expect(failed.map(formatResult)).toEqual([]);
  });

  it("a model without a checker skips those cases and says why", async () => {
    const plain = await loadModel(await tinyModel("f32"), { backend: "cpu" });
    try {
      const [c] = await readCases(join(safetyCheckerCases, "synthetic_96x64_grad.safetensors"));
      const [result] = await runCases(plain, [c]);
      expect(result).toMatchObject({ status: "SKIP", note: expect.stringMatching(/has no safety checker/) });
    } finally {
      await plain.close();
    }
  });
});

describe("generate() on the reference pipeline cases", () => {
  it("flags exactly the images the reference flags, and blackens them", async () => {
    const safetyCases = (await readCases(safetyCheckerCases)).filter((c) => c.name.startsWith("pipeline_"));
    expect(safetyCases.length).toBeGreaterThan(0);
    let flagged = 0;
    let checked = 0;
    for (const sc of safetyCases) {
      const inputs = JSON.parse(sc.metadata.inputs) as string[];
      const expected = [...sc.tensors.get("has_nsfw_concepts")!.data];
      expect(inputs).toHaveLength(expected.length);
      for (const [i, name] of inputs.entries()) {
        const [pipelineCase] = await readCases(join(referenceCases, "pipeline", `${name}.safetensors`));
        const [image] = await model.generate(pipelineCaseInput(pipelineCase));
        const black = image.rgba.every((v, k) => v === (k % 4 === 3 ? 255 : 0));
        expect({ name, flagged: image.nsfwContentDetected, black, ran: image.parameters.safetyChecker }).toEqual({ name, flagged: expected[i] === 1, black: expected[i] === 1, ran: "ran" });
        flagged += expected[i];
        checked++;
      }
    }
    // The cases flag some images and pass others: both outcomes are exercised.
    expect(flagged).toBeGreaterThan(0);
    expect(flagged).toBeLessThan(checked);
  });
});
