import { existsSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  type Architecture,
  architectures,
  buildLayers,
  type Flavour,
  flavours,
  layerFileName,
} from "./layer.ts";

/**
 * `npm run build:layer`: the four extension layers in `dist/layers/`, a line per step, then their
 * sizes. `--missing` (what `npm run synth` runs first) builds only the flavours and architectures
 * whose zip is not there yet, so a fresh clone synthesizes without a separate step.
 */

/** Lambda's limit for a function and all its layers, unpacked. */
const unpackedLimitBytes = 250 * 1024 * 1024;
const mb = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MB`;

const { values } = parseArgs({ options: { missing: { type: "boolean", default: false } } });
const outDir = fileURLToPath(new URL("../dist/layers", import.meta.url));
let wanted: { flavours: readonly Flavour[]; architectures: readonly Architecture[] } = {
  flavours,
  architectures,
};
if (values.missing) {
  const absent = flavours.flatMap((flavour) =>
    architectures
      .filter((architecture) => !existsSync(join(outDir, layerFileName(flavour, architecture))))
      .map((architecture) => ({ flavour, architecture })),
  );
  if (absent.length === 0) {
    console.log(
      `${relative(process.cwd(), outDir)}: every layer zip is there (npm run build:layer rebuilds them)`,
    );
    process.exit(0);
  }
  wanted = {
    flavours: flavours.filter((flavour) => absent.some((zip) => zip.flavour === flavour)),
    architectures: architectures.filter((architecture) =>
      absent.some((zip) => zip.architecture === architecture),
    ),
  };
  console.log(
    `building the missing layer zips: ${absent.map((zip) => layerFileName(zip.flavour, zip.architecture)).join(", ")}`,
  );
}

const layers = await buildLayers({ outDir, ...wanted, progress: (line) => console.log(line) });
const rows = layers.map((layer) => [
  relative(process.cwd(), layer.zipPath),
  mb(layer.compressedBytes),
  mb(layer.unpackedBytes),
  `${((layer.unpackedBytes / unpackedLimitBytes) * 100).toFixed(0)}% of 250 MB`,
]);
const header = ["layer", "zip", "unpacked", "share of Lambda's unpacked limit"];
const widths = header.map((title, column) =>
  Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)),
);
for (const row of [header, ...rows]) {
  console.log(
    row
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join("  ")
      .trimEnd(),
  );
}
