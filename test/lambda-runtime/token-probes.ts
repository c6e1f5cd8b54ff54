import { fileURLToPath } from "node:url";
import { afterAll, beforeAll } from "vitest";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import { type BuiltLayer, buildLayer } from "./built-layer.ts";
import { startDemoLambda } from "./demo-function.ts";
import { bundleFunction, type FunctionBundle } from "./function-bundle.ts";
import { type InvokeResult, type LocalLambda, payloadOf } from "./local-lambda.ts";
import type { TokenProbe } from "./token-probe-handler.ts";

/** The token probe function's source (token-probe-handler.ts). */
export const tokenProbePath = fileURLToPath(new URL("./token-probe-handler.ts", import.meta.url));

/** The probe's answer to one invocation; a failed invocation throws with its outcome. */
export function probeOf(result: InvokeResult): TokenProbe {
  return payloadOf<TokenProbe>(result);
}

export interface ProbeSandbox {
  readonly demo: Cloud;
  readonly lambda: LocalLambda;
}

/**
 * The probe function with the nodejs layer on a shiftable clock, direct access, against a hermetic
 * cloud of its own: started before the file's tests (unless `skip`), torn down after them.
 * `expiresInSeconds`: what Google STS's tokens live.
 */
export function probeSandboxForFile(
  skip: string | undefined,
  options: { expiresInSeconds?: number } = {},
): ProbeSandbox {
  let demo: Cloud | undefined;
  let layer: BuiltLayer | undefined;
  let bundle: FunctionBundle | undefined;
  let lambda: LocalLambda | undefined;
  beforeAll(async () => {
    if (skip !== undefined) return;
    demo = await startCloud();
    if (options.expiresInSeconds !== undefined) demo.googleSts.setExpiresIn(options.expiresInSeconds);
    layer = await buildLayer("nodejs");
    bundle = await bundleFunction(tokenProbePath);
    lambda = await startDemoLambda({
      demo,
      layer: layer.zipPath,
      bundle,
      impersonate: false,
      shiftableClock: true,
    });
  });
  afterAll(async () => {
    await lambda?.close();
    await bundle?.remove();
    await demo?.close();
    await layer?.remove();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("the probe sandbox is not started");
    return value;
  };
  return {
    get demo() {
      return started(demo);
    },
    get lambda() {
      return started(lambda);
    },
  };
}
