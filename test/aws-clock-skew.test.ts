import { GetWebIdentityTokenCommand } from "@aws-sdk/client-sts";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, expect, it } from "vitest";
import { awsError, createStsClient } from "../broker/aws-identity.ts";
import type { ProviderAudience } from "../broker/config.ts";
import { type BrokerEnv, type Cloud, startCloud } from "./cloud/cloud.ts";

/*
 * A machine whose clock is 20 minutes behind AWS's: STS refuses the signing time, which the broker
 * names as clock skew, not as credentials; the SDK corrects its clock by that answer's `Date`, so
 * the next call (the chain's retry) is accepted.
 */

let cloud: Cloud;
let env: BrokerEnv;
const saved = { ...process.env };

beforeAll(async () => {
  cloud = await startCloud();
  env = cloud.brokerEnv({ impersonate: false });
  process.env.AWS_ENDPOINT_URL_STS = env.AWS_ENDPOINT_URL_STS;
  process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
});

afterAll(async () => {
  process.env = saved;
  await cloud.close();
});

it("names a refused signing time as clock skew, and the SDK's next call, its clock corrected, is accepted", async () => {
  cloud.awsSts.setClockOffset(20 * 60_000);
  const sts = createStsClient(env.AWS_REGION);
  const command = () =>
    new GetWebIdentityTokenCommand({ Audience: [env.BROKER_AUDIENCE], SigningAlgorithm: "ES384" });
  try {
    const refused = await sts.send(command()).then(
      () => undefined,
      (error: unknown) => error,
    );
    const mapped = awsError(refused, {
      audience: env.BROKER_AUDIENCE as ProviderAudience,
      durationSeconds: 300,
      algorithm: "ES384",
    });
    expect(mapped.code).toBe("AWS_CLOCK_SKEW");
    expect(mapped.message).toMatch(
      /^AWS STS refused the request's signing time \(SignatureDoesNotMatch: Signature expired: \d{8}T\d{6}Z is more than 15 minutes from the server time\.\): this machine's clock is more than 15 minutes from AWS's; synchronise it \(NTP, chrony, the Amazon Time Sync Service\)$/,
    );
    const accepted = await sts.send(command());
    expect(decodeJwt(accepted.WebIdentityToken ?? "").aud).toBe(env.BROKER_AUDIENCE);
  } finally {
    sts.destroy();
  }
});
