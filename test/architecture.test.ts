import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./support/child.ts";

/*
 * The broker's modules form a one-way chain (config → AWS identity → Google exchange → token
 * cache → HTTP servers): no import circle, type imports and lazy `import()`s counted, and each
 * file of broker/ stays small enough to hold one concern.
 */

const maxLines = 400;

/** Every .ts file under `folder`, as a path from the repository root with `/` separators. */
function sources(folder: string): string[] {
  return readdirSync(path.join(repoRoot, folder), { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".ts"))
    .map((file) => `${folder}/${file.split(path.sep).join("/")}`)
    .sort();
}

const read = (file: string) => readFileSync(path.join(repoRoot, file), "utf8");

/**
 * Each file's relative imports, by TypeScript's own scanner: `import`, `import type`,
 * `export … from` and `import("…")`, none of them inside a comment or a string.
 */
function importGraph(files: readonly string[]): Map<string, string[]> {
  return new Map(
    files.map((file) => [
      file,
      ts
        .preProcessFile(read(file), true, true)
        .importedFiles.map(({ fileName }) => fileName)
        // A JSON import (package.json, for `--version`) is data, not a module of the chain.
        .filter((specifier) => specifier.startsWith(".") && !specifier.endsWith(".json"))
        .map((specifier) => path.posix.join(path.posix.dirname(file), specifier)),
    ]),
  );
}

/**
 * The circles a depth-first walk meets, each as the files along it, back to where it started.
 * Hand-written: a dozen lines, where a dependency-graph tool would be a dependency for one test.
 */
function circles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const found: string[][] = [];
  const done = new Set<string>();
  const walk = (file: string, trail: string[]) => {
    const start = trail.indexOf(file);
    if (start !== -1) return void found.push([...trail.slice(start), file]);
    if (done.has(file)) return;
    for (const imported of graph.get(file) ?? []) walk(imported, [...trail, file]);
    done.add(file);
  };
  for (const file of graph.keys()) walk(file, []);
  return found;
}

const lineCount = (text: string) => text.split("\n").length - (text.endsWith("\n") ? 1 : 0);

describe("the module structure", () => {
  const graph = importGraph([...sources("broker"), ...sources("lambda-extension")]);

  it("reads every kind of import, and each one names a file that exists", () => {
    const files = new Set(graph.keys());
    const dangling = [...graph].flatMap(([file, imports]) =>
      imports.filter((imported) => !files.has(imported)).map((imported) => `${file} → ${imported}`),
    );
    expect(dangling).toEqual([]);
    // A lazy import(), a type-only import and a re-export, so that a circle through any of them shows.
    expect(graph.get("broker/main.ts")).toContain("broker/token-chain.ts");
    expect(read("broker/ops-server.ts")).toMatch(/^import type \{[^}]*\} from "\.\/tokens\.ts";$/m);
    expect(graph.get("broker/ops-server.ts")).toContain("broker/tokens.ts");
    expect(read("broker/main.ts")).toMatch(/^export \{[^}]*\} from "\.\/logger\.ts";$/m);
    expect(graph.get("broker/main.ts")).toContain("broker/logger.ts");
  });

  it("has no import circle in broker/ or lambda-extension/", () => {
    expect(circles(graph).map((circle) => circle.join(" → "))).toEqual([]);
  });

  it(`has no file in broker/ over ${maxLines} lines`, () => {
    const long = sources("broker")
      .map((file) => ({ file, lines: lineCount(read(file)) }))
      .filter(({ lines }) => lines > maxLines)
      .map(({ file, lines }) => `${file}: ${lines} lines`);
    expect(long).toEqual([]);
  });
});
