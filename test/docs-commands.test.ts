import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, type TestContext } from "vitest";
import { repoRoot } from "./support/child.ts";

/*
 * Every command the docs give works as written. Each ```sh, ```bash or ```console block of
 * README.md, docs/*.md and infra/README.md carries a marker, an HTML comment on the line before it:
 *
 *   <!-- runnable -->                  runs here, and exits 0 within its time limit
 *   <!-- runnable: starts, ready at "TEXT" -->
 *                                      keeps running (a server): started, ready once its output
 *                                      holds TEXT, and stopped with Ctrl-C (SIGINT to its process
 *                                      group) after the file's last block: every process of it
 *                                      gone within 10 s, no error printed meanwhile
 *   <!-- runnable: pastes "HEADING"; … -->
 *                                      first pastes what a started block printed under its line
 *                                      `# HEADING`, as the text tells the reader to
 *   <!-- run by .ci/run -->            too long to run inside a test (the whole suite): each of
 *                                      its commands is a command of .ci/run
 *   <!-- needs: TOOL … -->             needs a tool or cloud this machine lacks (docker, terraform,
 *                                      aws, kubectl, gcloud): its syntax is checked (`bash -n`)
 *
 * An unmarked block fails. Runnable blocks run in order, each in a new bash, in a copy of the
 * clone (its tracked and new files, with node_modules linked in: the README's set-up command
 * `npm ci` has run, so it is a no-op here), with a new shell's environment (no node_modules/.bin
 * on PATH, no npm_* variables), inside a network namespace whose only interface is loopback:
 * nothing reaches past the machine, and the fixed ports the docs name (8181, 9464) are free.
 */

const documents = ["README.md", ...docsPages(), "infra/README.md"];
const tools = new Set(["docker", "terraform", "aws", "kubectl", "gcloud"]);
const runLimitMs = 240_000;
const readyLimitMs = 60_000;
const stopLimitMs = 10_000;

type Marker =
  | { readonly kind: "runnable"; readonly readyAt?: string; readonly pastes?: string }
  | { readonly kind: "ci" }
  | { readonly kind: "needs"; readonly tools: readonly string[] }
  | { readonly kind: "unmarked" | "unknown"; readonly text: string };

interface CommandBlock {
  readonly where: string;
  readonly marker: Marker;
  /** The shell script: the block's lines (a console block's `$ ` lines without the prompt). */
  readonly script: string;
}

function docsPages(): string[] {
  return execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "docs/*.md"], {
    cwd: repoRoot,
    encoding: "utf8",
  })
    .split("\n")
    .filter((file) => file !== "")
    .sort();
}

function parseMarker(line: string): Marker {
  const comment = /^<!--\s*(.*?)\s*-->$/.exec(line.trim())?.[1];
  if (comment === undefined) return { kind: "unmarked", text: line };
  if (comment === "run by .ci/run") return { kind: "ci" };
  const needs = /^needs:\s*(.+)$/.exec(comment)?.[1];
  if (needs !== undefined) return { kind: "needs", tools: needs.split(/\s+/) };
  const runnable = /^runnable(?::\s*(.*))?$/.exec(comment);
  if (runnable === null) return { kind: "unknown", text: comment };
  const options = runnable[1] ?? "";
  const readyAt = /starts, ready at "([^"]+)"/.exec(options)?.[1];
  const pastes = /pastes "([^"]+)"/.exec(options)?.[1];
  return {
    kind: "runnable",
    ...(readyAt === undefined ? {} : { readyAt }),
    ...(pastes === undefined ? {} : { pastes }),
  };
}

/** The shell blocks of a Markdown file, with the marker on the line before each. */
function commandBlocks(file: string): CommandBlock[] {
  const lines = readFileSync(path.join(repoRoot, file), "utf8").split("\n");
  const blocks: CommandBlock[] = [];
  for (let index = 0; index < lines.length; index += 1) {
    const fence = /^(```+)(\w*)/.exec(lines[index] ?? "");
    if (fence === null) continue;
    const [, ticks = "```", language = ""] = fence;
    const end = lines.findIndex((line, at) => at > index && line.startsWith(ticks) && line.trim() === ticks);
    const body = lines.slice(index + 1, end === -1 ? lines.length : end);
    if (["sh", "bash", "console"].includes(language)) {
      const script =
        language === "console"
          ? body.filter((line) => line.startsWith("$ ")).map((line) => line.slice(2))
          : body;
      blocks.push({
        where: `${file}:${index + 1}`,
        marker: parseMarker(lines[index - 1] ?? ""),
        script: script.join("\n"),
      });
    }
    index = end === -1 ? lines.length : end;
  }
  return blocks;
}

/** Commands of a script: its lines and `&&`-joined parts, comments and blank lines left out. */
function commands(script: string): string[] {
  return script
    .split("\n")
    .map((line) => line.replace(/\s+#.*$/, "").replace(/^#.*$/, ""))
    .flatMap((line) => line.split("&&"))
    .map((command) => command.trim())
    .filter((command) => command !== "");
}

/** The clone as a user has it after `npm ci`: the repository's files, node_modules linked in. */
function copyOfClone(): string {
  const copy = mkdtempSync(path.join(tmpdir(), "docs-commands-"));
  const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: repoRoot,
    encoding: "utf8",
  }).split("\0");
  for (const file of files.filter((name) => name !== "")) {
    const from = path.join(repoRoot, file);
    let mode: number;
    try {
      mode = statSync(from).mode;
    } catch {
      continue; // deleted in the working tree, not yet in the index
    }
    mkdirSync(path.dirname(path.join(copy, file)), { recursive: true });
    copyFileSync(from, path.join(copy, file));
    chmodSync(path.join(copy, file), mode);
  }
  symlinkSync(path.join(repoRoot, "node_modules"), path.join(copy, "node_modules"));
  return copy;
}

/** What a new shell has: the machine's PATH without any node_modules/.bin, none of npm's variables. */
const shellEnv: Record<string, string> = {
  PATH: (process.env.PATH ?? "/usr/bin:/bin")
    .split(path.delimiter)
    .filter((entry) => !entry.includes(`${path.sep}node_modules${path.sep}`))
    .join(path.delimiter),
  HOME: process.env.HOME ?? tmpdir(),
  LANG: "C.UTF-8",
  npm_config_update_notifier: "false",
};

/** Run before each block: stop at the first failing command; `npm ci` has run already. */
const prelude = [
  "set -eo pipefail",
  'npm() { if [ "$1" = ci ]; then echo "npm ci: done before this test"; else command npm "$@"; fi; }',
].join("\n");

interface Namespace {
  readonly holder: ChildProcess;
  /** The command line prefix that runs a program inside it. */
  readonly enter: readonly string[];
}

/**
 * A network namespace with only loopback, held open by a process that ends when its stdin closes
 * (when this test process ends, however it ends); blocks enter it with nsenter. Where unshare or
 * ip is missing or not permitted: why, with the install line.
 */
async function loopbackNamespace(): Promise<Namespace | string> {
  const root = process.getuid?.() === 0;
  const userFlags = root ? [] : ["--user", "--map-root-user"];
  const holder = spawn(
    "unshare",
    [...userFlags, "--net", "--", "sh", "-c", "ip link set lo up && echo up && exec cat >/dev/null"],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  let output = "";
  holder.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  holder.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const up = await new Promise<boolean>((resolve) => {
    holder.on("error", () => resolve(false));
    holder.on("exit", () => resolve(false));
    holder.stdout?.on("data", () => /^up$/m.test(output) && resolve(true));
    setTimeout(() => resolve(false), 10_000).unref();
  });
  if (!up) {
    holder.kill("SIGKILL");
    return `no network namespace for the documented commands (${output.trim() || "unshare failed"}): apt-get install util-linux iproute2, and allow user namespaces or run as root`;
  }
  const enter = [
    "nsenter",
    `--target=${holder.pid}`,
    "--net",
    ...(root ? [] : ["--user", "--preserve-credentials"]),
    "--",
  ];
  return { holder, enter };
}

interface Started {
  readonly where: string;
  readonly child: ChildProcess;
  output(): string;
}

const namespace = await loopbackNamespace();

/** In CI the namespace must be there (`.ci/run` installs iproute2); elsewhere its absence skips, saying why. */
function requireNamespace(context: TestContext): Namespace {
  if (typeof namespace !== "string") return namespace;
  if (process.env.CI === "true") throw new Error(namespace);
  context.skip(namespace);
  throw new Error("unreachable: context.skip throws");
}

describe.each(documents)("the command blocks of %s", (file) => {
  const blocks = commandBlocks(file);
  const started: Started[] = [];
  let clone: string | undefined;

  beforeAll(() => {
    if (blocks.some(({ marker }) => marker.kind === "runnable")) clone = copyOfClone();
  });
  afterAll(() => {
    for (const { child } of started)
      if (groupAlive(child.pid ?? 0)) process.kill(-(child.pid ?? 0), "SIGKILL");
    if (clone !== undefined) rmSync(clone, { recursive: true, force: true });
  });

  it("are each marked runnable, run by .ci/run, or needing named tools", () => {
    const wrong = blocks
      .filter(({ marker }) => marker.kind === "unmarked" || marker.kind === "unknown")
      .map(({ where, marker }) => `${where}: ${"text" in marker ? marker.text : ""}`);
    expect(wrong, "mark each block (see the header of test/docs-commands.test.ts)").toEqual([]);
    const unknownTools = blocks.flatMap(({ where, marker }) =>
      marker.kind === "needs"
        ? marker.tools.filter((tool) => !tools.has(tool)).map((tool) => `${where}: ${tool}`)
        : [],
    );
    expect(unknownTools).toEqual([]);
  });

  it("never run npx token-broker, which a clone has no bin for (npm run token-broker -- … is)", () => {
    expect(
      blocks.filter(({ script }) => /\bnpx token-broker\b/.test(script)).map(({ where }) => where),
    ).toEqual([]);
  });

  for (const block of blocks) {
    const { where, marker } = block;
    if (marker.kind === "needs") {
      it(`${where} (needs ${marker.tools.join(", ")}) is valid bash`, () => {
        const check = spawnSync("bash", ["-n"], { input: block.script, encoding: "utf8" });
        expect(check.stderr).toBe("");
        expect(check.status).toBe(0);
      });
    } else if (marker.kind === "ci") {
      it(`${where} is run by .ci/run`, () => {
        const ciLines = readFileSync(path.join(repoRoot, ".ci/run"), "utf8")
          .split("\n")
          .map((line) => line.trim());
        for (const command of commands(block.script)) {
          expect(
            ciLines.some((line) => line === command || line.startsWith(`${command} `)),
            command,
          ).toBe(true);
        }
      });
    } else if (marker.kind === "runnable") {
      const pasted = () => {
        if (marker.pastes === undefined) return "";
        const printed = started
          .map(({ output }) => output())
          .join("\n")
          .split("\n");
        const heading = printed.findIndex((line) => line.startsWith(`# ${marker.pastes}`));
        expect(heading, `nothing started printed "# ${marker.pastes}"`).toBeGreaterThanOrEqual(0);
        const end = printed.findIndex((line, index) => index > heading && line.trim() === "");
        return printed.slice(heading + 1, end === -1 ? undefined : end).join("\n");
      };
      const run = (inside: Namespace, script: string): Started => {
        if (clone === undefined) throw new Error("the copy of the clone was not made");
        const [command = "", ...args] = inside.enter;
        const child = spawn(command, [...args, "bash", "-c", `${prelude}\n${pasted()}\n${script}`], {
          cwd: clone,
          env: shellEnv,
          detached: true,
          stdio: ["ignore", "pipe", "pipe"],
        });
        let output = "";
        child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
        child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
        return { where, child, output: () => output };
      };
      if (marker.readyAt === undefined) {
        it(
          `${where} runs and exits 0`,
          async (context) => {
            const { child, output } = run(requireNamespace(context), block.script);
            const code = await exitCode(child, runLimitMs);
            expect(code, `${where} exited ${code}:\n${output()}`).toBe(0);
          },
          runLimitMs + 5_000,
        );
      } else {
        const readyAt = marker.readyAt;
        it(
          `${where} starts and is ready once it prints "${readyAt}"`,
          async (context) => {
            const running = run(requireNamespace(context), block.script);
            started.push(running);
            const deadline = performance.now() + readyLimitMs;
            while (
              !running.output().includes(readyAt) &&
              running.child.exitCode === null &&
              performance.now() < deadline
            ) {
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
            expect(running.output(), `${where} is not ready`).toContain(readyAt);
            expect(running.child.exitCode).toBeNull();
          },
          readyLimitMs + 5_000,
        );
      }
    }
  }

  if (blocks.some(({ marker }) => marker.kind === "runnable" && marker.readyAt !== undefined)) {
    it(
      "stops what it started on Ctrl-C: all of it gone within 10 s, no error printed",
      async (context) => {
        requireNamespace(context);
        for (const { where, child, output } of [...started].reverse()) {
          const group = child.pid ?? 0;
          const before = output().length;
          process.kill(-group, "SIGINT");
          const deadline = performance.now() + stopLimitMs;
          while (groupAlive(group) && performance.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          expect(groupAlive(group), `${where} still runs 10 s after Ctrl-C:\n${output()}`).toBe(false);
          expect(output().slice(before)).not.toMatch(/error/i);
        }
      },
      stopLimitMs * 3,
    );
  }
});

afterAll(() => {
  if (typeof namespace !== "string") namespace.holder.stdin?.end();
});

/** Whether any process of the process group `group` still runs. */
function groupAlive(group: number): boolean {
  if (group === 0) return false;
  try {
    process.kill(-group, 0);
    return true;
  } catch {
    return false;
  }
}

/** The exit code, or null if it did not exit within `limitMs` (its process group is then killed). */
function exitCode(child: ChildProcess, limitMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => {
      if (groupAlive(child.pid ?? 0)) process.kill(-(child.pid ?? 0), "SIGKILL");
      resolve(null);
    }, limitMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}
