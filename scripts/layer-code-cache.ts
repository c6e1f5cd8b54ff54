import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/*
 * The training run that makes the standalone layer's V8 code caches: the staged layer's own launcher
 * (its V8 flags) runs the extension against a stand-in Extensions API: register, INVOKE, SHUTDOWN.
 * Why: docs/layer-build.md#v8s-code-cache
 */

const trainingLimitMs = 20_000;

export async function trainCodeCache(launcher: string): Promise<void> {
  const events = [
    {
      eventType: "INVOKE",
      deadlineMs: Date.now() + 60_000,
      requestId: "training",
      invokedFunctionArn: "training",
    },
    // Later, so the first token fetch has time to run (and fail) before the extension stops.
    { eventType: "SHUTDOWN", deadlineMs: Date.now() + 60_000, shutdownReason: "spindown" },
  ];
  const api = createServer((req, res) => {
    if (req.url?.endsWith("/extension/register")) {
      res.writeHead(200, { "Content-Type": "application/json", "Lambda-Extension-Identifier": "training" });
      res.end(JSON.stringify({ functionName: "training", functionVersion: "$LATEST", handler: "training" }));
      return;
    }
    if (req.url?.endsWith("/extension/event/next")) {
      const event = events.shift();
      const delay = event?.eventType === "SHUTDOWN" ? 1_000 : 0;
      setTimeout(
        () => res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(event)),
        delay,
      );
      return;
    }
    res.writeHead(202).end();
  });
  api.listen(0, "127.0.0.1");
  await once(api, "listening");
  const refused = createServer().listen(0, "127.0.0.1");
  await once(refused, "listening");
  const closedPort = (refused.address() as AddressInfo).port;
  await new Promise((resolve) => refused.close(resolve));
  try {
    const child = spawn(launcher, [], {
      env: {
        AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${(api.address() as AddressInfo).port}`,
        TOKEN_BROKER_WRITE_CODE_CACHE: "1",
        AWS_REGION: "eu-west-1",
        AWS_ACCESS_KEY_ID: "AKIATRAININGRUN00000",
        AWS_SECRET_ACCESS_KEY: "training-run-not-a-secret",
        AWS_ENDPOINT_URL_STS: `http://127.0.0.1:${closedPort}`,
        BROKER_AUDIENCE:
          "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/training/providers/training",
        BROKER_PORT: "0",
        BROKER_OPS_HOST: "127.0.0.1",
        BROKER_OPS_PORT: "0",
      },
      stdio: "ignore",
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), trainingLimitMs);
    const [code] = (await once(child, "exit")) as [number | null];
    clearTimeout(timer);
    if (code !== 0) throw new Error(`the code cache training run exited with ${code}`);
  } finally {
    api.closeAllConnections();
    api.close();
  }
}
