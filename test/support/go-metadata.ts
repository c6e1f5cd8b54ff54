import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

/** Where Debian's golang-*-dev packages put Go sources (the Go SDK's metadata client, oauth2). */
const gopath = "/usr/share/gocode";

export type GoProgram = { binary: string } | { unavailable: string };

const builds = new Map<string, GoProgram>();

/** The Go client of test/sdk-clients/go-metadata, built once per process (see `goProgram`). */
export function goMetadataClient(): GoProgram {
  return goProgram(new URL("../sdk-clients/go-metadata/", import.meta.url).pathname, {
    "cloud.google.com/go/compute/metadata": "golang-google-cloud-compute-metadata-dev",
  });
}

/**
 * The Go program in `source` built once per process against Debian's packages (the Go module
 * proxy is out of reach, so GOPATH mode), or why it cannot be: `needs` maps each imported package
 * to the Debian package that provides it.
 */
export function goProgram(source: string, needs: Readonly<Record<string, string>>): GoProgram {
  const known = builds.get(source);
  if (known !== undefined) return known;
  const missing = Object.entries(needs).find(([imported]) => !existsSync(join(gopath, "src", imported)));
  let built: GoProgram;
  if (!existsSync("/usr/bin/go")) {
    built = { unavailable: "go is not installed" };
  } else if (missing !== undefined) {
    built = { unavailable: `${missing[1]} is not installed` };
  } else {
    const name = basename(source);
    const out = mkdtempSync(join(tmpdir(), `${name}-`));
    const binary = join(out, name);
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
    built =
      build.status === 0
        ? { binary }
        : { unavailable: `go build failed: ${build.stderr.trim().slice(0, 300)}` };
  }
  builds.set(source, built);
  return built;
}
