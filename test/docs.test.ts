import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { gceRouteSpecs } from "../broker/metadata-routes.ts";
import {
  awsTokenDurationSeconds,
  defaultRefreshPolicy,
  jwtReuseMarginMs,
  maxFreezeRestarts,
  newAudienceRate,
} from "../broker/policy.ts";
import { repoRoot } from "./support/child.ts";

/*
 * The repository explains itself: what its files cite is in docs/, and the docs say what the code
 * does. These checks fail when a doc and the code it describes drift apart.
 */

const read = (file: string) => readFileSync(path.join(repoRoot, file), "utf8");

/** Tracked and new files (what a clone would hold once committed). */
function repositoryFiles(): string[] {
  const listed = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: repoRoot,
    encoding: "utf8",
  });
  return [
    ...new Set(listed.split("\0").filter((file) => file !== "" && existsSync(path.join(repoRoot, file)))),
  ];
}

describe("docs/", () => {
  it("is what the repository cites: no file refers to a document outside it", () => {
    // Spelled in pieces so that this file does not match itself.
    const outside = new RegExp(
      `${["DESIGN", "EXAMPLES"].map((name) => `${name}\\.md`).join("|")}|\\.\\./shared`,
    );
    const citing = repositoryFiles().filter((file) =>
      outside.test(readFileSync(path.join(repoRoot, file), "latin1")),
    );
    expect(citing).toEqual([]);
  });

  it("holds every docs/ page a file names, and every relative link of a page resolves", () => {
    const named = new Set<string>();
    for (const file of repositoryFiles().filter((name) => /\.(ts|md|sh|tf|yaml)$/.test(name))) {
      for (const [cited] of read(file).matchAll(/docs\/[\w-]+\.md/g)) named.add(cited);
    }
    expect([...named].filter((cited) => !existsSync(path.join(repoRoot, cited)))).toEqual([]);
    for (const page of readdirSync(path.join(repoRoot, "docs")).filter((name) => name.endsWith(".md"))) {
      for (const [, target = ""] of read(`docs/${page}`).matchAll(/\]\(([^)#:]+)\)/g)) {
        expect(existsSync(path.join(repoRoot, "docs", target)), `${page} → ${target}`).toBe(true);
      }
    }
  });

  it("draws the README's picture of the chain", () => {
    const picture = (text: string) => /```\n( AWS role creds[\s\S]*?)```/.exec(text)?.[1];
    expect(picture(read("docs/architecture.md"))).toBeDefined();
    expect(picture(read("docs/architecture.md"))).toBe(picture(read("README.md")));
  });

  it("lists exactly the paths the metadata listener serves", () => {
    const documented = new Set<string>();
    // The first cell of each row of the paths table (a `\|` inside it is an escaped pipe).
    for (const [, cell = ""] of read("docs/metadata-server.md").matchAll(/^\| ((?:[^|\\]|\\.)+?) +\|/gm)) {
      for (const [, piece = ""] of cell.matchAll(/`([^`]+)`/g)) {
        const bare = piece.replace(/[?[].*$/, ""); // a query is not part of the path
        if (/^(instance|project|universe)\//.test(bare)) documented.add(`/computeMetadata/v1/${bare}`);
      }
    }
    const served = gceRouteSpecs
      .map((route) => route.path)
      .filter((route) => route.startsWith("/computeMetadata/v1/") && route !== "/computeMetadata/v1/");
    expect([...documented].sort()).toEqual([...served].sort());
  });

  it("states the refresh policy's values as the code sets them", () => {
    const text = read("docs/token-refresh.md").replace(/\s+/g, " ");
    const minutes = (ms: number) => `${ms / 60_000} min`;
    const seconds = (ms: number) => `${ms / 1000} s`;
    expect(text).toContain(`mandatory = min(${minutes(defaultRefreshPolicy.mandatoryMs)}, L/2)`);
    expect(text).toContain(`min(${minutes(defaultRefreshPolicy.advisorySpanMs)}, (L − mandatory)/2)`);
    expect(text).toContain(`shortened by up to ${defaultRefreshPolicy.jitter * 100} %`);
    expect(text).toContain(`waits (at most ${seconds(defaultRefreshPolicy.waitMs)})`);
    expect(text).toContain(`up to ${defaultRefreshPolicy.attempts} attempts`);
    expect(text).toContain(`within a ${seconds(defaultRefreshPolicy.chainDeadlineMs)} deadline`);
    expect(text).toContain(
      `exponentially from ${seconds(defaultRefreshPolicy.backoffBaseMs)} to ${seconds(defaultRefreshPolicy.backoffMaxMs)}`,
    );
    expect(text).toContain(`at most ${defaultRefreshPolicy.maxEntries} keys`);
    expect(text).toContain(`at most ${defaultRefreshPolicy.maxChains} chains run at once`);
    expect(text).toContain(`${defaultRefreshPolicy.maxWaitingKeys} more keys wait`);
    expect(text).toContain(
      `at most ${newAudienceRate.perWindow} new audiences every ${seconds(newAudienceRate.windowMs)}`,
    );
    expect(text).toContain(`within the last ${minutes(newAudienceRate.knownForMs)} is not new`);
    expect(text).toContain(`up to ${maxFreezeRestarts} times in a row`);
    const floorMs = awsTokenDurationSeconds.min * 1000;
    expect(text).toContain(
      `at least min(${seconds(jwtReuseMarginMs(Number.POSITIVE_INFINITY))}, half its lifetime) left, so even a ${seconds(floorMs)} JWT (\`BROKER_AWS_TOKEN_DURATION\`'s floor) serves the exchanges of its first ${seconds(floorMs - jwtReuseMarginMs(floorMs))}`,
    );
  });
});

describe("README", () => {
  it("asks for the Node that package.json's engines requires", () => {
    const engines = (JSON.parse(read("package.json")) as { engines: { node: string } }).engines.node;
    const major = /^>=(\d+)$/.exec(engines)?.[1];
    expect(major).toBeDefined();
    for (const file of ["README.md", "infra/README.md"]) {
      const asked = [...read(file).matchAll(/Node (\d+) or later/g)].map((match) => match[1]);
      expect(asked.length, file).toBeGreaterThan(0);
      expect(new Set(asked), file).toEqual(new Set([major]));
    }
  });
});
