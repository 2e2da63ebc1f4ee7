// Whether this machine can run the Vulkan tests on the CPU: Mesa's lavapipe, new enough.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";

const icdDir = "/usr/share/vulkan/icd.d";
const hasLavapipe = process.platform === "linux" && process.arch === "x64" && existsSync(icdDir) && readdirSync(icdDir).some((f) => f.startsWith("lvp_icd."));

/** The installed Mesa Vulkan drivers' major version (Debian's package), or 0 where it cannot be read. */
function mesaMajor(): number {
  try {
    return Number.parseInt(execFileSync("dpkg-query", ["-W", "-f=${Version}", "mesa-vulkan-drivers"], { encoding: "utf8" }), 10) || 0;
  } catch {
    return 0;
  }
}

// Debian 12's own lavapipe (Mesa 22.3) corrupts the heap under ggml-vulkan's shaders after a few
// graphs; .ci/run installs 25.x from bookworm-backports (docs/gpu.md).
export const lavapipe = hasLavapipe && mesaMajor() >= 25;

// CI installs lavapipe (.ci/run): there, a missing or old driver is a failure, not a reason to skip.
if (!lavapipe && process.env.CI === "true") {
  throw new Error("CI needs Mesa's lavapipe 25 or newer (mesa-vulkan-drivers from bookworm-backports) for the Vulkan tests");
}
