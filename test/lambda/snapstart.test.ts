import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import { type BuiltLayer, buildLayer } from "../lambda-runtime/built-layer.ts";
import { envelopeSkipReason } from "../lambda-runtime/cgroups.ts";
import { startDemoLambda } from "../lambda-runtime/demo-function.ts";
import { bundleFunction, type FunctionBundle } from "../lambda-runtime/function-bundle.ts";
import { type LocalLambda, payloadOf } from "../lambda-runtime/local-lambda.ts";
import { restoreSnapshot } from "../lambda-runtime/snapstart.ts";
import type { TokenProbe } from "../lambda-runtime/token-probe-handler.ts";
import type { InitTokenProbe } from "./init-token-handler.ts";
import type { KeysProbe } from "./snapstart-keys-handler.ts";

/**
 * SnapStart (`AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`): init runs once, the sandbox is
 * snapshotted, and the snapshot is restored later, possibly days later and in many places, with
 * rotated container credentials and every connection from before destroyed. The extension
 * gets AWS credentials from the container credentials endpoint (the environment holds no keys),
 * fetches nothing itself before the snapshot, and after a restore serves nothing from before it:
 * the first token request gets a token minted after the restore, with the new credentials, on
 * new connections, within one chain's time.
 *
 * The restores here come a minute after the snapshot (the sandbox's wall clock moves, its
 * monotonic clock does not, as in a restored snapshot), so a token from before the snapshot
 * would still be valid: only forgetting it keeps it from being served. Every key the function
 * used before the snapshot is fetched again at the restore: only the first request waits.
 */

/** How far the wall clock moves between the snapshot and its restore. */
const restoredAfterMs = 60_000;

const skip = envelopeSkipReason();

let demo: Cloud;
let layer: BuiltLayer;
const bundles: FunctionBundle[] = [];
let lambda: LocalLambda | undefined;

beforeAll(async () => {
  if (skip !== undefined) return;
  demo = await startCloud();
  layer = await buildLayer("nodejs");
});

afterEach(async () => {
  await lambda?.close();
  lambda = undefined;
});

afterAll(async () => {
  for (const bundle of bundles) await bundle.remove();
  await demo?.close();
  await layer?.remove();
});

async function snapStart(handler: string): Promise<LocalLambda> {
  const bundle = await bundleFunction(fileURLToPath(new URL(handler, import.meta.url)));
  bundles.push(bundle);
  lambda = await startDemoLambda({
    demo,
    layer: layer.zipPath,
    bundle,
    impersonate: false,
    initializationType: "snap-start",
    shiftableClock: true,
  });
  return lambda;
}

function restore(sandbox: LocalLambda) {
  return restoreSnapshot(sandbox, demo, { advanceClockMs: restoredAfterMs });
}

function chains(): { aws: number; google: number } {
  return { aws: demo.awsSts.calls.get("GetWebIdentityToken"), google: demo.googleSts.calls.get("token") };
}

/** The extension's lines; EMF documents among them have no level and no msg. */
function brokerLines(sandbox: LocalLambda, from = 0): { level?: number; msg?: string }[] {
  return sandbox.logs
    .slice(from)
    .filter((entry) => entry.source === "token-broker")
    .map((entry) => JSON.parse(entry.line) as { level?: number; msg?: string });
}

describe.skipIf(skip !== undefined)(`SnapStart${skip === undefined ? "" : ` (skipped: ${skip})`}`, () => {
  it("fetches nothing before the snapshot and mints the first token after the restore", async () => {
    const before = chains();
    const sandbox = await snapStart("../lambda-runtime/token-probe-handler.ts");
    expect(sandbox.snapshotted).toBe(true);
    expect(chains()).toEqual(before);

    const restored = await restore(sandbox);
    const result = await sandbox.invoke({});
    const probe = payloadOf<TokenProbe>(result);
    expect(demo.ledger.resolveAccessToken(probe.token)?.issuedBy).toBe("google-sts");
    expect(probe.expiresInMs).toBeGreaterThan(50 * 60_000);
    expect(chains()).toEqual({ aws: before.aws + 1, google: before.google + 1 });
    expect(demo.awsSts.issued().at(-1)?.accessKeyId).toBe(restored.credentials.accessKeyId);
    expect(result.durationMs).toBeLessThan(2_000);
  }, 60_000);

  it("serves nothing from before the snapshot: the function's init token, its credentials and connections are forgotten", async () => {
    const before = chains();
    const issuedBefore = demo.awsSts.issued().length;
    const sandbox = await snapStart("./init-token-handler.ts");
    // The function's own init asked for a token: one chain, with the credentials of the publish.
    expect(chains()).toEqual({ aws: before.aws + 1, google: before.google + 1 });
    const publishKey = demo.containerCredentials.current().accessKeyId;
    expect(demo.awsSts.issued().at(-1)?.accessKeyId).toBe(publishKey);

    const restored = await restore(sandbox);
    expect(restored.previousAccessKeyId).toBe(publishKey);
    const logsBefore = sandbox.logs.length;
    const probe = payloadOf<InitTokenProbe>(await sandbox.invoke({}));

    expect(probe.token).not.toBe(probe.initToken);
    expect(demo.ledger.resolveAccessToken(probe.token)?.issuedBy).toBe("google-sts");
    // Exactly one chain after the restore, with the rotated credentials: no attempt with the old
    // ones, and no retry after a reset on a connection from before the snapshot.
    expect(chains()).toEqual({ aws: before.aws + 2, google: before.google + 2 });
    expect(
      demo.awsSts
        .issued()
        .slice(issuedBefore + 1)
        .map((issued) => issued.accessKeyId),
    ).toEqual([restored.credentials.accessKeyId]);
    expect(probe.waitMs).toBeLessThan(2_000);
    const lines = brokerLines(sandbox, logsBefore);
    expect(lines.map((line) => line.msg)).toContain(
      "restored from a snapshot: forgetting every token, credential and connection from before",
    );
    expect(lines.filter((line) => (line.level ?? 0) >= 40)).toEqual([]);
  }, 60_000);

  it("sees the restore on the lookup path: a request before the extension's INVOKE gets no token from before", async () => {
    const before = chains();
    const sandbox = await snapStart("./init-token-handler.ts");
    await restore(sandbox);
    // The function's request reaches the broker well before the extension sees its INVOKE.
    const probe = payloadOf<InitTokenProbe>(await sandbox.invoke({}, { extensionsLateMs: 1_000 }));
    expect(probe.token).not.toBe(probe.initToken);
    expect(demo.ledger.resolveAccessToken(probe.token)?.issuedBy).toBe("google-sts");
    expect(chains()).toEqual({ aws: before.aws + 2, google: before.google + 2 });
    expect(probe.waitMs).toBeLessThan(1_000);
  }, 60_000);

  it("fetches every key used before the snapshot again at the restore: only the first request waits for a chain", async () => {
    const before = chains();
    const sandbox = await snapStart("./snapstart-keys-handler.ts");
    // Two scope sets primed in the function's init: two exchanges on one JWT.
    expect(chains()).toEqual({ aws: before.aws + 1, google: before.google + 2 });
    await restore(sandbox);
    demo.googleSts.faults.inject({ kind: "slow", ms: 300, times: 2 });
    const probe = payloadOf<KeysProbe>(await sandbox.invoke({}));
    expect(chains()).toEqual({ aws: before.aws + 2, google: before.google + 4 });
    for (const [index, token] of probe.tokens.entries()) {
      expect(token).not.toBe(probe.primed[index]);
      expect(demo.ledger.resolveAccessToken(token)?.issuedBy).toBe("google-sts");
    }
    const [first, second] = probe.waitsMs;
    expect(first).toBeGreaterThanOrEqual(300);
    // Fetched at the same time as the first, not when asked.
    expect(second).toBeLessThan(100);
  }, 60_000);
});
