import { describe, expect, it } from "vitest";
import type { BrokerHandle } from "../broker/main.ts";
import { defaultRefreshPolicy } from "../broker/policy.ts";
import { impersonatedServiceAccount } from "./cloud/cloud.ts";
import { accessTokenOf, getToken } from "./support/broker-probes.ts";
import { runNodeScript } from "./support/child.ts";
import { hermeticBrokers } from "./support/hermetic-brokers.ts";
import { workloadEnv } from "./support/workload-env.ts";

/*
 * IAM Credentials answering 401 UNAUTHENTICATED to the federated token the broker keeps (Google
 * revoked it, or it ended early): the broker drops it, exchanges the JWT once more and answers the
 * workload, whose real google-auth-library never learns of it. Before, the refusal was answered as
 * IMPERSONATION_DENIED with a grant hint, and the refused token served every later chain.
 */

const suite = hermeticBrokers();
const bigquery = "https://www.googleapis.com/auth/bigquery";
const storage = "https://www.googleapis.com/auth/devstorage.read_write";

/** The token google-auth-library's Compute client gets for `scopes` through the broker. */
async function computeClientToken(broker: BrokerHandle, scopes: readonly string[]): Promise<string> {
  const { token } = await runNodeScript<{ token: string }>(
    `import { Compute } from "google-auth-library";
     const compute = new Compute({ scopes: ${JSON.stringify(scopes)} });
     console.log(JSON.stringify({ token: (await compute.getAccessToken()).token }));`,
    workloadEnv(new URL(broker.metadataUrl).host, { METADATA_SERVER_DETECTION: "assume-present" }),
  );
  return token;
}

describe("IAM Credentials refusing the cached federated token (401 UNAUTHENTICATED)", () => {
  it("drops it, exchanges once more within the same request, and serves later scope sets with the new one", async () => {
    // The client's wait stretched to the chain deadline: what is checked is the refusal, not the wait.
    const policy = { ...defaultRefreshPolicy, waitMs: defaultRefreshPolicy.chainDeadlineMs };
    const broker = await suite.start({ impersonate: true, start: { policy } });
    const { cloud } = suite;
    accessTokenOf(await getToken(broker, suite.scan));
    expect(cloud.googleSts.calls.get("token")).toBe(1);

    cloud.iamCredentials.faults.inject({ kind: "status", status: 401, times: 1 });
    const token = await computeClientToken(broker, [bigquery]);
    expect(cloud.ledger.resolveAccessToken(token)).toMatchObject({
      principal: { kind: "serviceAccount", email: impersonatedServiceAccount(cloud.world) },
      scopes: [bigquery],
    });
    const [warm, refused, renewed, ...others] = cloud.iamCredentials.requests().map((call) => call.bearer);
    expect(others).toEqual([]);
    expect(refused).toBe(warm);
    expect(renewed).not.toBe(refused);
    expect(cloud.ledger.resolveAccessToken(renewed ?? "")?.issuedBy).toBe("google-sts");
    expect({
      exchanges: cloud.googleSts.calls.get("token"),
      jwts: cloud.awsSts.calls.get("GetWebIdentityToken"),
    }).toEqual({
      exchanges: 2,
      jwts: 1,
    });

    // The refused token is gone for good: the next scope set is impersonated with the new one.
    await computeClientToken(broker, [storage]);
    expect(cloud.iamCredentials.requests().at(-1)?.bearer).toBe(renewed);
    expect(cloud.googleSts.calls.get("token")).toBe(2);
  });
});
