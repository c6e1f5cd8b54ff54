import { buildGoProgram, missingGo } from "./go-build.ts";

const source = new URL("../sdk-clients/go-metadata/", import.meta.url).pathname;

let built: { binary: string } | { unavailable: string } | undefined;

/**
 * The Go client of test/sdk-clients/go-metadata built once per process against Debian's
 * golang-google-cloud-compute-metadata-dev, or why it cannot be.
 */
export function goMetadataClient(): { binary: string } | { unavailable: string } {
  const unavailable = missingGo([
    {
      importPath: "cloud.google.com/go/compute/metadata",
      debianPackage: "golang-google-cloud-compute-metadata-dev",
    },
  ]);
  built ??= unavailable === undefined ? { binary: buildGoProgram(source) } : { unavailable };
  return built;
}
