import type { ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cloud, startCloud } from "../cloud/cloud.ts";
import { type BuiltLayer, buildLayer } from "../lambda-runtime/built-layer.ts";
import { tokenPath } from "../support/broker-probes.ts";
import { freePort } from "../support/free-port.ts";
import { httpGet } from "../support/http-client.ts";
import { registered, startExtension, unpackLayer } from "./extension-process.ts";

/**
 * The extension binds its ports and registers before it loads the broker: Lambda starts the
 * function once every extension has registered, and the function may ask for a token at once.
 * A request that arrives while the broker is not loaded yet waits in the listener and is
 * answered once it is; none is refused. Here Lambda holds the registration's answer, so the
 * broker cannot have loaded when the request arrives.
 */

let demo: Cloud;
let layer: BuiltLayer;
let opt: { optDir: string; remove(): Promise<void> };

beforeAll(async () => {
  demo = await startCloud();
  layer = await buildLayer("nodejs");
  opt = await unpackLayer(layer.zipPath);
});

afterAll(async () => {
  await opt?.remove();
  await layer?.remove();
  await demo?.close();
});

describe("a request that arrives before the broker is loaded", () => {
  it("waits instead of being refused, and is answered with a token once the broker has loaded", async () => {
    let heldRegistration: ServerResponse | undefined;
    let registrationArrived: () => void = () => undefined;
    const arrived = new Promise<void>((resolve) => {
      registrationArrived = resolve;
    });
    const metadataPort = await freePort();
    const extension = await startExtension(
      opt.optDir,
      {
        ...demo.brokerEnv({ impersonate: true }),
        BROKER_PORT: String(metadataPort),
        BROKER_OPS_HOST: "127.0.0.1",
        BROKER_OPS_PORT: String(await freePort()),
      },
      (req, res) => {
        if (req.url?.endsWith("/extension/register")) {
          heldRegistration = res;
          registrationArrived();
        }
        // event/next stays open: no event comes in this test.
      },
    );
    try {
      await arrived;
      // The port is bound before registering; the broker loads only after the answer.
      const answer = httpGet(metadataPort, tokenPath, { headers: { "Metadata-Flavor": "Google" } });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(extension.lines.filter((line) => line.includes("token-broker listening"))).toEqual([]);
      if (heldRegistration !== undefined) registered(heldRegistration);
      const { status, headers, body } = await answer;
      expect(status).toBe(200);
      expect(headers["metadata-flavor"]).toBe("Google");
      const parsed = JSON.parse(body) as { access_token: string; expires_in: number; token_type: string };
      expect(parsed.token_type).toBe("Bearer");
      expect(demo.ledger.resolveAccessToken(parsed.access_token)?.issuedBy).toBe("iam-credentials");
      expect(parsed.expires_in).toBeGreaterThan(3_500);
      expect(demo.awsSts.calls.get("GetWebIdentityToken")).toBe(1);
    } finally {
      await extension.stop();
    }
  });
});
