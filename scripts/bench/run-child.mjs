// The bench's child processes (scripts/bench/child.mjs), one job each: scripts/bench.mjs runs
// them one at a time, forwarding their progress lines to stderr.
import { fork } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const childScript = join(root, "scripts/bench/child.mjs");

let currentChild;

/** Runs one job in a fresh child (env: extra variables); resolves { result } or { error }, never rejects. */
export function runChild(job, timeoutSeconds, env = {}) {
  return new Promise((done) => {
    const child = fork(childScript, [JSON.stringify(job)], { cwd: root, stdio: ["ignore", "pipe", "pipe", "ipc"], env: { ...process.env, ...env } });
    currentChild = child;
    const tail = [];
    let result;
    let error;
    let timedOut = false;
    const forward = (chunk) => {
      for (const line of chunk.toString().split("\n")) {
        if (!line.trim()) continue;
        process.stderr.write(`${line}\n`);
        tail.push(line.trim());
        if (tail.length > 8) tail.shift();
      }
    };
    child.stdout.on("data", forward);
    child.stderr.on("data", forward);
    child.on("message", (m) => {
      if (m?.kind === "result") result = m.result;
      else if (m?.kind === "error") error = m.message;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutSeconds * 1000);
    let finished = false;
    const finish = (code, signal) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      currentChild = undefined;
      if (result && code === 0) return done({ result });
      let why = error;
      if (!why) {
        if (timedOut) why = `timed out after ${timeoutSeconds} s`;
        else if (signal) why = `killed by ${signal}${signal === "SIGKILL" ? " (out of memory?)" : ""}`;
        else why = `exited with code ${code}`;
        const last = tail.filter((l) => !l.startsWith("[")).at(-1) ?? tail.at(-1);
        if (last) why += `; last output: ${last}`;
      }
      done({ error: why });
    };
    child.on("error", (e) => {
      error ??= `could not start: ${e.message}`;
      finish(null, null);
    });
    child.on("close", finish);
  });
}

/** Kills the child now running, if any (on SIGINT). */
export function killRunningChild() {
  if (currentChild?.pid) currentChild.kill("SIGKILL");
}
