/*
 * esbuild `inject` for the broker's bundles: `Headers` and `FormData` (gaxios and google-auth-library
 * build requests with them) resolve to node-fetch's, so Node's fetch stack (undici) never loads.
 * Why: docs/layer-build.md#nodes-fetch-stays-unloaded
 */
export { FormData, Headers } from "node-fetch";
