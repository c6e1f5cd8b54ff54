import { fileURLToPath } from "node:url";
import type { BuildOptions, Plugin } from "esbuild";

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

/**
 * prom-client's index loads its cluster aggregator and its Pushgateway client, which the broker
 * never uses; they bring in node:cluster's primary side, node:https and node:zlib at start-up
 * (3.6 MB and 6 ms before the Lambda extension registers, npm run bench:lambda). In the bundle
 * the two exports are left undefined.
 */
const leaveOutUnusedPromClient: Plugin = {
  name: "leave-out-unused-prom-client",
  setup(build) {
    build.onResolve({ filter: /^\.\/lib\/(cluster|pushgateway)$/ }, (args) =>
      args.importer.includes("/node_modules/prom-client/")
        ? { path: args.path, namespace: "left-out" }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: "left-out" }, () => ({ contents: "", loader: "js" }));
  },
};

/** The broker's own bundles: the shared settings, Google's HTTP calls kept off undici, prom-client trimmed. */
export const brokerBundleOptions = {
  ...bundleOptions,
  inject: [fileURLToPath(new URL("./fetch-globals.ts", import.meta.url))],
  plugins: [leaveOutUnusedPromClient],
} as const satisfies BuildOptions;
