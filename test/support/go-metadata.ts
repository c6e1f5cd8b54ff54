import { buildGoProgram, type GoBuild } from "./go-build.ts";

const source = new URL("../sdk-clients/go-metadata/", import.meta.url).pathname;

let built: GoBuild | undefined;

/**
 * The Go client of test/sdk-clients/go-metadata built once per process against Debian's
 * golang-google-cloud-compute-metadata-dev, or why it cannot be.
 */
export function goMetadataClient(): GoBuild {
  built ??= buildGoProgram(source, [
    {
      importPath: "cloud.google.com/go/compute/metadata",
      debianPackage: "golang-google-cloud-compute-metadata-dev",
    },
  ]);
  return built;
}
