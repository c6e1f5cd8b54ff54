import { relative } from "node:path";
import { buildLayers } from "./layer.ts";

/** `npm run build:layer`: the four extension layers in `dist/layers/`, with their sizes. */

/** Lambda's limit for a function and all its layers, unpacked. */
const unpackedLimitBytes = 250 * 1024 * 1024;
const mb = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MB`;

const layers = await buildLayers();
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
