import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { GetWebIdentityTokenCommand } from "@aws-sdk/client-sts";
import { afterAll, beforeAll, expect, it } from "vitest";
import { awsError, createStsClient } from "../broker/aws-identity.ts";
import type { ProviderAudience } from "../broker/config.ts";
import { type BrokerEnv, type Cloud, startCloud } from "./cloud/cloud.ts";

/*
 * A signing time AWS refuses names the clock, not the credentials. A loopback relay in front of
 * the hermetic cloud's STS dates every answer 30 minutes back, as a clock 30 minutes off would
 * read it: the SDK corrects its signing time by that answer, and STS refuses the next request.
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
async function twoCalls() {
  const sts = createStsClient(env.AWS_REGION);
  const command = () =>
    new GetWebIdentityTokenCommand({ Audience: [env.BROKER_AUDIENCE], SigningAlgorithm: "ES384" });
  try {
    await sts.send(command());
    return await sts.send(command()).then(
      () => undefined,
      (error: unknown) => error,
    );
  } finally {
    sts.destroy();
  }
}

it("reads AWS's refusal of a signing time as clock skew, with its fix", async () => {
  const mapped = awsError(await twoCalls(), {
    audience: env.BROKER_AUDIENCE as ProviderAudience,
    durationSeconds: 300,
    algorithm: "ES384",
  });
  expect(mapped.code).toBe("AWS_CLOCK_SKEW");
  expect(mapped.message).toMatch(
    /^AWS STS refused the request's signing time \(SignatureDoesNotMatch: Signature expired: \d{8}T\d{6}Z is more than 15 minutes from the server time\.\): this machine's clock is more than 15 minutes from AWS's; synchronise it/,
  );
});
