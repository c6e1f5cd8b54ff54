/*
 * esbuild `inject` for the broker's bundles (scripts/bundle-options.ts): every free reference to
 * `Headers` or `FormData` in the bundled code (gaxios and google-auth-library build their requests
 * with them) resolves to node-fetch's classes instead of Node's globals. On Node, gaxios already
 * fetches with node-fetch, which runs on node:http; touching any of Node's fetch globals would
 * load undici, Node's whole fetch stack, for good: more memory for the Lambda extension after its
 * first token (npm run bench:lambda measures it). Under the extension's V8 lite mode (no WebAssembly) Node's
 * own fetch would not even run.
 */
export { FormData, Headers } from "node-fetch";
