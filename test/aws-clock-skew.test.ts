import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { GetWebIdentityTokenCommand } from "@aws-sdk/client-sts";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { awsError, createStsClient } from "../broker/aws-identity.ts";
import type { ProviderAudience } from "../broker/config.ts";
import { type BrokerEnv, type Cloud, startCloud } from "./cloud/cloud.ts";

/*
 * A sandbox frozen while AWS STS's answer was on its way reads it at the thaw, its `Date` header
 * written before the freeze. A loopback relay in front of the hermetic cloud's STS dates every
 * answer 30 minutes back, as one read 30 minutes late is: what does the next call sign with?
 */

const lateMs = 30 * 60_000;

let cloud: Cloud;
let relay: Server;
let env: BrokerEnv;
const saved = { ...process.env };

beforeAll(async () => {
  cloud = await startCloud();
  const target = new URL(cloud.awsSts.url);
  relay = createServer((incoming, answer) => {
    const forwarded = request(
      {
        host: target.hostname,
        port: target.port,
        method: incoming.method,
        path: incoming.url,
        headers: incoming.headers,
      },
      (response) => {
        const date = Date.parse(response.headers.date ?? "");
        answer.writeHead(response.statusCode ?? 502, {
          ...response.headers,
          date: new Date(date - lateMs).toUTCString(),
        });
        response.pipe(answer);
      },
    );
    incoming.pipe(forwarded);
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  env = cloud.brokerEnv({ impersonate: false });
  process.env.AWS_ENDPOINT_URL_STS = `http://127.0.0.1:${(relay.address() as AddressInfo).port}`;
  process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
});

afterAll(async () => {
  process.env = saved;
  await new Promise((resolve) => relay.close(resolve));
  await cloud.close();
});

/** Two GetWebIdentityToken calls through the relay: the first answer's `Date` is 30 minutes old. */
async function twoCalls(freezable: boolean) {
  const sts = createStsClient(env.AWS_REGION, { freezable });
  const command = () =>
    new GetWebIdentityTokenCommand({ Audience: [env.BROKER_AUDIENCE], SigningAlgorithm: "ES384" });
  try {
    await sts.send(command());
    return await sts.send(command()).then(
      (output) => ({ ok: true as const, aud: decodeJwt(output.WebIdentityToken ?? "").aud }),
      (error: unknown) => ({ ok: false as const, error }),
    );
  } finally {
    sts.destroy();
  }
}

describe("the STS client after an answer read late", () => {
  it("in a freezable sandbox, signs the next call with its own clock, which AWS accepts", async () => {
    expect(await twoCalls(true)).toEqual({ ok: true, aud: env.BROKER_AUDIENCE });
  });

  it("elsewhere, corrects its clock as the SDK does, and AWS's refusal reads as clock skew", async () => {
    const second = await twoCalls(false);
    expect(second.ok).toBe(false);
    const mapped = awsError(second.ok ? undefined : second.error, {
      audience: env.BROKER_AUDIENCE as ProviderAudience,
      durationSeconds: 300,
      algorithm: "ES384",
    });
    expect(mapped.code).toBe("AWS_CLOCK_SKEW");
    expect(mapped.message).toMatch(
      /^AWS STS refused the request's signing time \(SignatureDoesNotMatch: Signature expired: \d{8}T\d{6}Z is more than 15 minutes from the server time\.\): this machine's clock is more than 15 minutes from AWS's; synchronise it/,
    );
  });
});
