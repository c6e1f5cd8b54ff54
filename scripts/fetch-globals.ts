/*
 * esbuild `inject` for the broker's bundles (scripts/bundle-options.ts): every free reference to
 * `Headers` or `FormData` in the bundled code (gaxios and google-auth-library build their requests
 * with them) resolves to node-fetch's classes instead of Node's globals. Touching any of Node's
 * fetch globals loads undici, its whole fetch stack, which then stays in memory; the broker's
 * Google calls go through node-fetch (broker/google-exchange.ts), which runs on node:http.
 */
export { FormData, Headers } from "node-fetch";
