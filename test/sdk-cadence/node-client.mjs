// A workload on google-auth-library with the library's own token cache: every tick it asks the
// library for its access token (scopes CADENCE_SCOPES) and, with CADENCE_AUDIENCE, for an ID
// token, as each API call would; the library goes to the metadata server only when its copy is
// within its eager-refresh threshold (5 minutes). Each of those fetches is recorded: how long it
// took and how long the token it brought had left. Prints {"event":"first"} once both keys have
// had a token (asking every tick until then), then runs CADENCE_RUN_MS more and prints
// {"event":"done",...} with the fetches and errors of that run.
import { GoogleAuth, IdTokenClient } from "google-auth-library";

const runMs = Number(process.env.CADENCE_RUN_MS);
const tickMs = Number(process.env.CADENCE_TICK_MS);
const scopes = process.env.CADENCE_SCOPES?.split(",");
const audience = process.env.CADENCE_AUDIENCE;

const fetches = [];
let errors = 0;
const auth = new GoogleAuth(scopes === undefined ? {} : { scopes });
const compute = await auth.getClient();
const accessKey = `access ${scopes?.join(" ") ?? "default"}`;
let accessStartedAt = 0;
compute.on("tokens", (tokens) => {
  const now = performance.now();
  fetches.push({ key: accessKey, ms: now - accessStartedAt, leftMs: tokens.expiry_date - Date.now() });
});
const idClient =
  audience === undefined
    ? undefined
    : new IdTokenClient({
        targetAudience: audience,
        idTokenProvider: {
          fetchIdToken: async (target) => {
            const started = performance.now();
            const token = await compute.fetchIdToken(target);
            const { exp } = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
            fetches.push({
              key: `id ${target}`,
              ms: performance.now() - started,
              leftMs: exp * 1000 - Date.now(),
            });
            return token;
          },
        },
      });

/** One API call's worth of token lookups; false if the library could not get a token. */
async function tick() {
  try {
    accessStartedAt = performance.now();
    await compute.getAccessToken();
    await idClient?.getRequestHeaders();
    return true;
  } catch (error) {
    errors += 1;
    process.stderr.write(`${error.message}\n`);
    return false;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
while (!(await tick())) await sleep(tickMs);
fetches.length = 0;
errors = 0;
console.log(JSON.stringify({ event: "first", atMs: Date.now() }));
const end = Date.now() + runMs;
while (Date.now() < end) {
  await sleep(tickMs);
  await tick();
}
console.log(JSON.stringify({ event: "done", fetches, errors }));
