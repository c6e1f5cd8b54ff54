import { fileURLToPath } from "node:url";
import type { BuildOptions } from "esbuild";

/**
 * Shared esbuild settings for everything bundled into a single file (the broker's bundles below;
 * the demo function under the local Lambda runtime). Some dependencies are CommonJS and call `require`; an ESM bundle has no `require`
 * of its own, so the banner makes one.
 */
export const bundleOptions = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  minify: false,
  sourcemap: false,
  legalComments: "none",
  logLevel: "warning",
  banner: {
    js: 'import { createRequire as __tbCreateRequire } from "node:module"; const require = __tbCreateRequire(import.meta.url);',
  },
} as const satisfies BuildOptions;

/** The broker's own bundles: the shared settings, and Google's HTTP calls kept off undici. */
export const brokerBundleOptions = {
  ...bundleOptions,
  inject: [fileURLToPath(new URL("./fetch-globals.ts", import.meta.url))],
} as const satisfies BuildOptions;
