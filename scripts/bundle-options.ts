import type { BuildOptions } from "esbuild";

/**
 * Shared esbuild settings for everything we ship as a single file (the sidecar bin, the Lambda
 * extension). Some dependencies are CommonJS and call `require`; an ESM bundle has no `require`
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
