import { buildGoProgram, missingGo } from "./go-build.ts";

export type GoProgram = { binary: string } | { unavailable: string };

const builds = new Map<string, GoProgram>();

/**
 * The Go program in `source` built once per process against Debian's packages, or why it cannot
 * be: `needs` maps each imported package to the Debian package that provides it.
 */
export function goProgram(source: string, needs: Readonly<Record<string, string>>): GoProgram {
  const known = builds.get(source);
  if (known !== undefined) return known;
  const unavailable = missingGo(
    Object.entries(needs).map(([importPath, debianPackage]) => ({ importPath, debianPackage })),
  );
  const built = unavailable === undefined ? { binary: buildGoProgram(source) } : { unavailable };
  builds.set(source, built);
  return built;
}

/** The Go client of test/sdk-clients/go-metadata (see `goProgram`). */
export function goMetadataClient(): GoProgram {
  return goProgram(new URL("../sdk-clients/go-metadata/", import.meta.url).pathname, {
    "cloud.google.com/go/compute/metadata": "golang-google-cloud-compute-metadata-dev",
  });
}
