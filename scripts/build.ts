import { chmod } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { brokerBundleOptions } from "./bundle-options.ts";

/** `npm run build`: the sidecar as one file, `dist/token-broker.mjs` (the `token-broker` bin). */
const root = fileURLToPath(new URL("..", import.meta.url));
const outfile = `${root}dist/token-broker.mjs`;
await build({
  ...brokerBundleOptions,
  entryPoints: [`${root}broker/cli.ts`],
  outfile,
  banner: { js: `#!/usr/bin/env node\n${brokerBundleOptions.banner.js}` },
});
await chmod(outfile, 0o755);
console.log(`built ${outfile}`);
