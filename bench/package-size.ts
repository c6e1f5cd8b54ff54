import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { packRepository } from "../test/support/packed-package.ts";
import { printSection, progress, type Section } from "./report.ts";
import { formatNumber } from "./stats.ts";

/*
 * The package `npm pack` writes and each layer zip in it: the tarball's sizes from npm's own report,
 * each zip's unpacked size from its central directory. How: docs/benchmarks.md#package-and-layer-sizes
 */

const run = promisify(execFile);

export interface LayerSize {
  readonly file: string;
  readonly zipBytes: number;
  readonly unpackedBytes: number;
}

export interface PackageSizes {
  readonly tarball: string;
  readonly packedBytes: number;
  readonly unpackedBytes: number;
  readonly files: number;
  readonly layers: readonly LayerSize[];
}

/** What each flavour runs beside, for the table (TokenBrokerLayer.flavourFor decides it). */
const runsBeside: Record<string, string> = {
  nodejs: "nodejs22.x, nodejs24.x (the function's own Node)",
  standalone: "any runtime (carries Node 24)",
};

export async function measurePackage(): Promise<PackageSizes> {
  const work = await mkdtemp(join(tmpdir(), "bench-package-"));
  try {
    progress("packing the package (its prepack builds the bin, the layer zips and the CDK library)");
    const packed = await packRepository(work);
    const unpacked = join(work, "unpacked");
    await mkdir(unpacked);
    await run("tar", ["-xzf", packed.tarball, "-C", unpacked, "package/dist/layers"]);
    const layers: LayerSize[] = [];
    for (const file of packed.files.filter((entry) => entry.path.startsWith("dist/layers/"))) {
      // `unzip -Zt`: "N files, X bytes uncompressed, Y bytes compressed: Z%".
      const { stdout } = await run("unzip", ["-Zt", join(unpacked, "package", file.path)]);
      const total = /(\d+) bytes uncompressed/.exec(stdout)?.[1];
      if (total === undefined) throw new Error(`unzip -Zt reported no size for ${file.path}: ${stdout}`);
      layers.push({ file: basename(file.path), zipBytes: file.size, unpackedBytes: Number(total) });
    }
    return {
      tarball: basename(packed.tarball),
      packedBytes: packed.size,
      unpackedBytes: packed.unpackedSize,
      files: packed.files.length,
      layers,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const mb = (bytes: number) => formatNumber(bytes / (1024 * 1024), 1);

export function packageSection(sizes: PackageSizes): Section {
  const zips = sizes.layers.reduce((sum, layer) => sum + layer.zipBytes, 0);
  return {
    title: "The package and its layers: what npm pack ships, what an app stages",
    command: "npm run bench -- --only package",
    method: [
      "`npm pack` of a copy of the repository (its prepack runs `npm run build`, `build:layer` and `build:cdk`);",
      "the tarball's sizes as npm reports them, each layer zip's unpacked size from its central directory",
      "(`unzip -Zt`). One build, so no spread: the same sources give the same bytes.",
    ].join(" "),
    tables: [
      {
        header: ["tarball", "packed, MB", "unpacked, MB", "of which layer zips, MB", "files"],
        rows: [
          [
            sizes.tarball,
            mb(sizes.packedBytes),
            mb(sizes.unpackedBytes),
            mb(zips),
            formatNumber(sizes.files),
          ],
        ],
      },
      {
        header: ["layer", "zip, MB", "unpacked, MB", "runs beside"],
        rows: sizes.layers.map((layer) => [
          layer.file,
          mb(layer.zipBytes),
          mb(layer.unpackedBytes),
          runsBeside[/^token-broker-(\w+)-/.exec(layer.file)?.[1] ?? ""] ?? "",
        ]),
      },
    ],
    targets: [],
    notes: [
      "The tarball carries all four zips, since any app may need any of them; a CDK app stages and publishes only the versions its functions run (one per flavour and architecture in use), and installing the package adds no package beyond it (test/package.test.ts).",
    ],
  };
}

if (import.meta.main) printSection(packageSection(await measurePackage()));
