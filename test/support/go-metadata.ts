import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Where Debian's golang-google-cloud-compute-metadata-dev puts the Go SDK's metadata client. */
const gopath = "/usr/share/gocode";
const source = new URL("../sdk-clients/go-metadata/", import.meta.url).pathname;

let built: { binary: string } | { unavailable: string } | undefined;

/**
 * The Go client of test/sdk-clients/go-metadata built once per process against Debian's package
 * (the Go module proxy is out of reach, so GOPATH mode), or why it cannot be.
 */
export function goMetadataClient(): { binary: string } | { unavailable: string } {
  if (built !== undefined) return built;
  if (!existsSync("/usr/bin/go")) {
    built = { unavailable: "go is not installed" };
  } else if (!existsSync(join(gopath, "src/cloud.google.com/go/compute/metadata"))) {
    built = { unavailable: "golang-google-cloud-compute-metadata-dev is not installed" };
  } else {
    const out = mkdtempSync(join(tmpdir(), "go-metadata-"));
    const binary = join(out, "go-metadata");
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
  return built;
}
