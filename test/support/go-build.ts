import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

/** Where Debian's golang-*-dev packages put Go sources. */
const gopath = "/usr/share/gocode";

/** A Go import path the program needs and the Debian package that ships it. */
export interface DebianGoPackage {
  readonly importPath: string;
  readonly debianPackage: string;
}

export type GoBuild = { readonly binary: string } | { readonly unavailable: string };

/**
 * Builds the Go program in `source` against Debian's packaged sources (the Go module proxy is out
 * of reach, so GOPATH mode: nothing is fetched), or says why it cannot: Go or a package missing,
 * or the build's own error.
 */
export function buildGoProgram(source: string, needs: readonly DebianGoPackage[]): GoBuild {
  if (!existsSync("/usr/bin/go")) return { unavailable: "go is not installed (golang-go)" };
  const missing = needs.filter((need) => !existsSync(join(gopath, "src", need.importPath)));
  if (missing.length > 0) {
    return { unavailable: `${missing.map((need) => need.debianPackage).join(" and ")} not installed` };
  }
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
  return build.status === 0
    ? { binary }
    : { unavailable: `go build failed: ${build.stderr.trim().slice(0, 300)}` };
}
