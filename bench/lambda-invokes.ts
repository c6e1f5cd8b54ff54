import { fileURLToPath } from "node:url";
import type { Layer } from "../scripts/layer.ts";
import type { Cloud } from "../test/cloud/cloud.ts";
import {
  demoHandlerPath,
  seedHandlerPath,
  startDemoLambda,
  startSeedLambda,
} from "../test/lambda-runtime/demo-function.ts";
import { bundleFunction } from "../test/lambda-runtime/function-bundle.ts";
import type { InvokeResult } from "../test/lambda-runtime/local-lambda.ts";
import { progress } from "./report.ts";
import type { TokenWait } from "./token-wait-handler.ts";

/*
 * Invocations under the local Lambda runtime (test/lambda-runtime): the real layer zip unpacked,
 * the extension started and registered, the function run by aws-lambda-ric, the sandbox frozen
 * between invocations. Every upstream call of the hermetic cloud is slowed by `latencyMs` (AWS
 * STS, Google STS, IAM Credentials, and the GCS and BigQuery calls of the demo), so both sides
 * pay realistic round trips.
 */

const tokenWaitHandlerPath = fileURLToPath(new URL("token-wait-handler.ts", import.meta.url));

export function slowEveryUpstream(cloud: Cloud, latencyMs: number): void {
  for (const fake of [cloud.awsSts, cloud.googleSts, cloud.iamCredentials, cloud.gcs, cloud.bigquery]) {
    fake.faults.inject({ kind: "slow", ms: latencyMs });
  }
}

export interface FirstTokenWaits {
  readonly prewarmed: number[];
  readonly notPrewarmed: number[];
}

/**
 * The first invocation of a fresh sandbox asks for a token (bench/token-wait-handler.ts): the
 * prewarmed default scopes, or a scope set nobody prewarmed (the wait a broker without prewarm
 * would impose on every first token). Fresh sandboxes alternate between the two, `rounds` each.
 */
export async function benchFirstTokenWait(
  demo: Cloud,
  layer: Layer,
  rounds: number,
): Promise<FirstTokenWaits> {
  const bundle = await bundleFunction(tokenWaitHandlerPath);
  const waits: FirstTokenWaits = { prewarmed: [], notPrewarmed: [] };
  try {
    for (let round = 0; round < rounds; round += 1) {
      const kinds =
        round % 2 === 0 ? (["prewarmed", "notPrewarmed"] as const) : (["notPrewarmed", "prewarmed"] as const);
      for (const kind of kinds) {
        progress(`first-invoke token wait ${round + 1}/${rounds}: ${kind}`);
        const lambda = await startDemoLambda({ demo, layer: layer.zipPath, bundle, impersonate: true });
        try {
          const result = await lambda.invoke({ prewarmed: kind === "prewarmed" });
          waits[kind].push(tokenWaitOf(result));
        } finally {
          await lambda.close();
        }
      }
    }
    return waits;
  } finally {
    await bundle.remove();
  }
}

function tokenWaitOf(result: InvokeResult): number {
  if (result.outcome.kind !== "response") {
    throw new Error(
      `the token-wait function failed: ${result.outcome.errorType} ${result.outcome.errorMessage}`,
    );
  }
  const wait = result.outcome.payload as TokenWait;
  if (!wait.gotToken) throw new Error("the token-wait function got no token");
  return wait.waitMs;
}

export interface WarmInvokes {
  readonly demo: number[];
  readonly seed: number[];
  /** GetWebIdentityToken calls during the warm invocations, per handler. */
  readonly chains: { demo: number; seed: number };
}

/**
 * Warm invocation durations (the first, cold one left out) of the demo handler with the broker
 * layer and of the seed-style handler that mints and exchanges inline, `invokes` per sandbox,
 * sandboxes alternating, `rounds` each.
 */
export async function benchWarmInvokes(
  demo: Cloud,
  layer: Layer,
  rounds: number,
  invokes: number,
): Promise<WarmInvokes> {
  const demoBundle = await bundleFunction(demoHandlerPath);
  const seedBundle = await bundleFunction(seedHandlerPath);
  const durations: WarmInvokes = { demo: [], seed: [], chains: { demo: 0, seed: 0 } };
  const chainsSoFar = () => demo.awsSts.calls.get("GetWebIdentityToken");
  const start = (kind: keyof WarmInvokes) =>
    kind === "demo"
      ? startDemoLambda({ demo, layer: layer.zipPath, bundle: demoBundle, impersonate: true })
      : startSeedLambda({ demo, bundle: seedBundle });
  try {
    for (let round = 0; round < rounds; round += 1) {
      const kinds = round % 2 === 0 ? (["demo", "seed"] as const) : (["seed", "demo"] as const);
      for (const kind of kinds) {
        progress(`warm invokes ${round + 1}/${rounds}: ${kind}`);
        const lambda = await start(kind);
        try {
          let chainsBefore = 0;
          for (let invoke = 0; invoke <= invokes; invoke += 1) {
            // The first invocation is the cold one: not counted, in durations or in chains.
            if (invoke === 1) chainsBefore = chainsSoFar();
            const result = await lambda.invoke({});
            const payload =
              result.outcome.kind === "response" ? (result.outcome.payload as { statusCode?: number }) : {};
            if (payload.statusCode !== 200) {
              throw new Error(
                `the ${kind} function did not write its greeting: ${JSON.stringify(result.outcome)}`,
              );
            }
            if (invoke > 0) durations[kind].push(result.durationMs);
          }
          durations.chains[kind] += chainsSoFar() - chainsBefore;
        } finally {
          await lambda.close();
        }
      }
    }
    return durations;
  } finally {
    await Promise.all([demoBundle.remove(), seedBundle.remove()]);
  }
}
