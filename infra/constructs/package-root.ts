import { createRequire } from "node:module";
import path from "node:path";

/**
 * The token-broker package's folder: a clone of this repository, or node_modules/token-broker in
 * an app. Found by the package's own name (`exports` lists package.json), so it holds both for
 * these sources and for the compiled library in dist/cdk, which sits at another depth.
 */
export const packageRoot = path.dirname(createRequire(import.meta.url).resolve("token-broker/package.json"));
