import { describe, expect, it } from "vitest";
import { accessBoundary } from "../broker/access-boundary.ts";
import { systemClock } from "../broker/clock.ts";
import { Downscoping, reachesCloudStorage } from "../broker/downscoping.ts";
import type { AccessToken } from "../broker/tokens.ts";
import { federatedWriter, issueToken } from "./cloud/google-clients.ts";
import { demoWorld as world } from "./cloud/world.ts";
import { brokerErrorOf, hermeticUpstream } from "./support/chain-clients.ts";
import { type GoogleFailureCase, googleFailureCases } from "./support/google-failure-cases.ts";

/*
 * The downscoping client against the hermetic Google STS, through a recording proxy: the exact
 * form on the wire, a token that never outlives its source, and the error each refusal becomes.
 */

const upstream = hermeticUpstream((cloud) => cloud.googleSts);
const boundary = accessBoundary(
  "BROKER_ACCESS_BOUNDARY",
  `${world.grantedBucket}/in/=objectCreator,${world.grantedBucket}=objectViewer`,
  "",
);
const accessTokenType = "urn:ietf:params:oauth:token-type:access_token";
const googleApis = "https://www.googleapis.com/auth/";

function downscoping(): Downscoping {
  return new Downscoping({
    config: { stsUrl: `${upstream.proxy.url}/v1/token` },
    boundary,
    google: upstream.clients.google,
    clock: systemClock,
  });
}

/** A federated cloud-platform token of the demo role, as the chain would hand it over. */
function source(expiresInMs = 3_600_000): AccessToken {
  const token = issueToken(upstream.cloud.ledger, federatedWriter(world), { expiresInMs });
  return { token, expiresAtMs: upstream.cloud.ledger.resolveAccessToken(token)?.expiresAtMs ?? 0 };
}

const refused = (detail: string) =>
  `Google STS refused to downscope the token to BROKER_ACCESS_BOUNDARY (${detail}); check its buckets and roles`;

describe("the downscoping exchange", () => {
  it("posts the RFC 8693 form with the boundary in options, and gets the source's principal under it", async () => {
    const subject = source();
    const token = await downscoping().downscope(subject, AbortSignal.timeout(5_000));

    const [request, ...others] = upstream.proxy.requests();
    expect(others).toEqual([]);
    expect({ method: request?.method, path: request?.path, body: request?.body }).toEqual({
      method: "POST",
      path: "/v1/token",
      body: new URLSearchParams({
        grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
        requested_token_type: accessTokenType,
        subject_token: subject.token,
        subject_token_type: accessTokenType,
        options: boundary.options,
      }).toString(),
    });
    expect(request?.headers["content-type"]).toBe("application/x-www-form-urlencoded;charset=UTF-8");
    expect(request?.headers.authorization).toBeUndefined();

    const issued = upstream.cloud.ledger.resolveAccessToken(token.token);
    const original = upstream.cloud.ledger.resolveAccessToken(subject.token);
    expect(token.token).not.toBe(subject.token);
    expect(issued?.principal).toEqual(original?.principal);
    expect(issued?.scopes).toEqual([`${googleApis}cloud-platform`]);
    // Google STS read the boundary as written: the prefix rule's condition, the whole-bucket viewer.
    expect(
      issued?.accessBoundary?.map((rule) => ({
        bucket: rule.bucket,
        permissions: [...rule.permissions].sort(),
        condition: rule.condition,
      })),
    ).toEqual([
      {
        bucket: world.grantedBucket,
        permissions: ["storage.objects.create"],
        condition: `resource.name.startsWith('projects/_/buckets/${world.grantedBucket}/objects/in/') || api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('in/')`,
      },
      {
        bucket: world.grantedBucket,
        permissions: ["storage.objects.get", "storage.objects.list"],
        condition: undefined,
      },
    ]);
    expect(upstream.clients.reported()).toEqual([{ step: "downscoping", outcome: "success" }]);
  });

  it("answers a token that expires with its source, never after it", async () => {
    const subject = source(20 * 60_000);
    const token = await downscoping().downscope(subject, AbortSignal.timeout(5_000));
    // Google's expires_in is whole seconds of what the source has left.
    expect(token.expiresAtMs).toBeLessThanOrEqual(subject.expiresAtMs);
    expect(token.expiresAtMs).toBeGreaterThan(subject.expiresAtMs - 2_000);
    expect(upstream.cloud.ledger.resolveAccessToken(token.token)?.expiresAtMs).toBe(subject.expiresAtMs);
  });

  it("keeps the source's expiry when the chain knows it to be earlier than Google's answer", async () => {
    const subject = source();
    const earlier = { token: subject.token, expiresAtMs: subject.expiresAtMs - 30 * 60_000 };
    const token = await downscoping().downscope(earlier, AbortSignal.timeout(5_000));
    expect(token.expiresAtMs).toBe(earlier.expiresAtMs);
  });
});

describe("downscoping refusals and failures", () => {
  it("a source Google no longer knows: ACCESS_BOUNDARY_REJECTED quoting Google", async () => {
    const lapsed = { token: "ya29.unknown-to-google", expiresAtMs: Date.now() + 600_000 };
    const error = await brokerErrorOf(downscoping().downscope(lapsed, AbortSignal.timeout(5_000)));
    expect({
      code: error.code,
      status: error.httpStatus,
      retryable: error.retryable,
      message: error.message,
    }).toEqual({
      code: "ACCESS_BOUNDARY_REJECTED",
      status: 503,
      retryable: false,
      message: refused("invalid_grant: The subject token is invalid or has expired."),
    });
    expect(upstream.clients.reported()).toEqual([
      { step: "downscoping", outcome: "error", code: "ACCESS_BOUNDARY_REJECTED" },
    ]);
  });

  it("a token that already carries a boundary: ACCESS_BOUNDARY_REJECTED", async () => {
    const once = await downscoping().downscope(source(), AbortSignal.timeout(5_000));
    const error = await brokerErrorOf(downscoping().downscope(once, AbortSignal.timeout(5_000)));
    expect({ code: error.code, message: error.message }).toEqual({
      code: "ACCESS_BOUNDARY_REJECTED",
      message: refused(
        "invalid_request: The subject token already carries an access boundary; another cannot be applied to it.",
      ),
    });
  });

  it.each<GoogleFailureCase>([
    {
      label: "HTTP 403",
      fault: { kind: "status", status: 403 },
      code: "ACCESS_BOUNDARY_REJECTED",
      message: refused("PERMISSION_DENIED: Injected fault: HTTP 403."),
      outcome: "error",
    },
    ...googleFailureCases({
      api: "Google STS",
      quota: "sts.googleapis.com token exchange requests per minute per project",
      project: "the service account's or workload identity pool's",
      unavailable: "GOOGLE_STS_UNAVAILABLE",
      statuses: [503],
    }),
  ])("$label → $code", async ({ fault, code, message, outcome }) => {
    upstream.cloud.googleSts.faults.inject(fault);
    const error = await brokerErrorOf(downscoping().downscope(source(), AbortSignal.timeout(5_000)));
    expect({ code: error.code, status: error.httpStatus, message: error.message }).toEqual({
      code,
      status: 503,
      message,
    });
    expect(upstream.clients.reported()).toEqual([{ step: "downscoping", outcome, code }]);
    expect(upstream.cloud.ledger.leaksIn(upstream.clients.log())).toEqual([]);
  });

  it("a hung Google STS: the chain's signal ends the call at once, as UPSTREAM_TIMEOUT", async () => {
    upstream.cloud.googleSts.faults.inject({ kind: "hang" });
    const started = performance.now();
    const error = await brokerErrorOf(downscoping().downscope(source(), AbortSignal.timeout(300)));
    expect(performance.now() - started).toBeLessThan(2_000);
    expect({ code: error.code, message: error.message }).toEqual({
      code: "UPSTREAM_TIMEOUT",
      message: "Google STS did not answer in time",
    });
    expect(upstream.clients.reported()).toEqual([
      { step: "downscoping", outcome: "timeout", code: "UPSTREAM_TIMEOUT" },
    ]);
  });
});

describe("the scope sets a boundary applies to", () => {
  it.each<[string[], boolean]>([
    [[`${googleApis}cloud-platform`], true],
    [[`${googleApis}cloud-platform.read-only`], true],
    [[`${googleApis}devstorage.read_only`], true],
    [[`${googleApis}devstorage.read_write`], true],
    [[`${googleApis}devstorage.full_control`], true],
    [[`${googleApis}bigquery`, `${googleApis}devstorage.read_write`], true],
    [[`${googleApis}iam`, `${googleApis}cloud-platform`, `${googleApis}devstorage.full_control`], true],
    [[`${googleApis}bigquery`], false],
    [[`${googleApis}bigquery`, `${googleApis}iam`], false],
    [[`${googleApis}cloud-platform.readonly`], false],
    [[`${googleApis}userinfo.email`], false],
  ])("%j → %s", (scopes, expected) => {
    expect(reachesCloudStorage(scopes)).toBe(expected);
  });
});
