#!/usr/bin/env node
// A screenshot of the page that `jsd serve` shows at / (docs/images/jsd-serve.png): starts the
// server with the embedded tiny model on a free loopback port, opens the page in headless
// Chromium at 1280×900, generates a few images through the page itself (typing the prompt and
// pressing 生成 Generate, as a person would) and saves the window once the last one is done.
//
//   npm run build:ts                      # the script uses the compiled dist/server/
//   node scripts/screenshot-page.mjs [--out docs/images/jsd-serve.png] [--chromium /usr/bin/chromium]
//
// Needs Chromium (Debian: apt-get install chromium) and, for the Japanese text, a CJK font
// (apt-get install fonts-noto-cjk); puppeteer-core is a devDependency. The page files are read
// when the server starts, so edits to page/ show on the next run without a rebuild.
import { existsSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import puppeteer from "puppeteer-core";
import { createServer } from "../dist/server/index.js";

const { values: args } = parseArgs({
  options: {
    out: { type: "string", default: "docs/images/jsd-serve.png" },
    chromium: { type: "string", default: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium" },
    width: { type: "string", default: "1280" },
    height: { type: "string", default: "900" },
  },
});

if (!existsSync(args.chromium)) {
  console.error(`no Chromium at ${args.chromium} (apt-get install chromium, or pass --chromium PATH)`);
  process.exit(2);
}

/** What the page generates, in order; the last job is the one left on the progress panel. */
const JOBS = [
  { prompt: "青い背景に黄色い星", seed: "5", images: 1 },
  { prompt: "黒い背景に白い四角", seed: "2", images: 1 },
  { prompt: "白い背景に赤い丸", seed: "3", images: 1 },
];

const server = await createServer({ port: 0, previewEvery: 1, load: { threads: 1 } });
let browser;
try {
  const url = await server.listen();
  browser = await puppeteer.launch({
    executablePath: args.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--font-render-hinting=none"],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: Number(args.width), height: Number(args.height), deviceScaleFactor: 1 });
  await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "light" }]);
  page.on("pageerror", (error) => console.error("page error:", error.message));
  await page.goto(url, { waitUntil: "networkidle0" });
  await page.waitForSelector("body[data-ready]");

  const setValue = (selector, value) =>
    page.$eval(
      selector,
      (element, v) => {
        element.value = v;
        element.dispatchEvent(new Event("input", { bubbles: true }));
        element.dispatchEvent(new Event("change", { bubbles: true }));
      },
      value,
    );

  await setValue("#steps", "20");
  await page.$eval("#seed-random", (box) => {
    if (box.checked) box.click();
  });
  let expected = 0;
  for (const job of JOBS) {
    await setValue("#prompt", "");
    await page.type("#prompt", job.prompt);
    await setValue("#seed", job.seed);
    await setValue("#num-images", String(job.images));
    await page.click("#generate");
    expected += job.images;
    await page.waitForFunction((n) => document.querySelectorAll("#gallery img").length >= n && !document.body.classList.contains("busy"), { timeout: 60_000 }, expected);
  }
  // The token counter shows the last prompt's count; give its debounce time to settle.
  await page.waitForFunction(() => /\d+ \/ \d+/.test(document.querySelector("#prompt-tokens").textContent), { timeout: 10_000 });
  await page.$eval("#prompt", (element) => element.blur());
  // Let the last card's fade-in and the progress bar's transition end.
  await new Promise((r) => setTimeout(r, 600));

  const out = resolve(args.out);
  mkdirSync(dirname(out), { recursive: true });
  await page.screenshot({ path: out, type: "png" });
  console.log(`wrote ${out}`);
} finally {
  await browser?.close();
  await server.close();
}
