import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

/** Where Debian's golang-*-dev packages put Go sources. */
const gopath = "/usr/share/gocode";

/** A Go import path a program needs and the Debian package that ships it. */
export interface DebianGoPackage {
  readonly importPath: string;
  readonly debianPackage: string;
}

/** What of Go and `needs` this machine lacks, as one line; undefined when all is there. */
export function missingGo(needs: readonly DebianGoPackage[]): string | undefined {
  if (!existsSync("/usr/bin/go")) return "go is not installed (golang-go)";
  const missing = needs.filter((need) => !existsSync(join(gopath, "src", need.importPath)));
  return missing.length === 0
    ? undefined
    : `${missing.map((need) => need.debianPackage).join(" and ")} not installed`;
}

/**
 * Builds the Go program in `source` against Debian's packaged sources (the Go module proxy is out
 * of reach, so GOPATH mode: nothing is fetched) and returns the binary's path; a failed build
 * throws with Go's error.
 */
export function buildGoProgram(source: string): string {
  const out = mkdtempSync(join(tmpdir(), "go-build-"));
  const binary = join(out, basename(source));
  const build = spawnSync("/usr/bin/go", ["build", "-o", binary, "."], {
    cwd: source,
    env: {
      PATH: "/usr/bin:/bin",
      HOME: out,
      GO111MODULE: "off",
      GOPATH: gopath,
      GOCACHE: join(out, "cache"),
    },
    encoding: "utf8",
    timeout: 120_000,
  });
  if (build.status !== 0) throw new Error(`go build in ${source} failed: ${build.stderr.trim()}`);
  return binary;
}
