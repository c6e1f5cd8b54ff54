import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { bundleOptions } from "./bundle-options.ts";

/**
 * The ECS demo app (client-demo/ecs-app.ts) as one file, `dist/ecs-app.mjs`, for
 * client-demo/Dockerfile. Its Google SDKs are dev dependencies (an app that installs token-broker
 * must not get them), so the image carries them bundled, as the Lambda demo's function does.
 */
const root = fileURLToPath(new URL("..", import.meta.url));
const outfile = `${root}dist/ecs-app.mjs`;
await build({ ...bundleOptions, entryPoints: [`${root}client-demo/ecs-app.ts`], outfile });
console.log(`built ${outfile}`);
