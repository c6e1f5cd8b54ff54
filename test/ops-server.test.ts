import { afterEach, describe, expect, it } from "vitest";
import { explainingCheck } from "../broker/doctor/verdict.ts";
import { BrokerError } from "../broker/errors.ts";
import { listen, type RunningListener } from "../broker/http-listener.ts";
import { createLogger } from "../broker/logger.ts";
import { BrokerMetrics } from "../broker/metrics.ts";
import { createOpsApp } from "../broker/ops-server.ts";
import { readinessDeadlineMs } from "../broker/policy.ts";
import { PrometheusMetrics } from "../broker/prometheus-metrics.ts";
import type { AccessToken, Readiness, TokenSource } from "../broker/tokens.ts";
import { captureLog } from "./support/capture-log.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { type HttpAnswer, httpGet } from "./support/http-client.ts";

/** A token source whose answer and readiness each test sets; counts the lookups made. */
class ScriptedTokenSource implements TokenSource {
  lookups = 0;
  answer: () => Promise<AccessToken> = async () => ({ token: "ya29.ops-test", expiresAtMs: 0 });
  state: Readiness = { ready: true, degraded: false };

  freshAccessToken(): undefined {
    return undefined;
  }

  accessToken(): Promise<AccessToken> {
    this.lookups += 1;
    return this.answer();
  }

  idToken(): Promise<never> {
    throw new Error("the ops listener never asks for ID tokens");
  }

  readiness(): Readiness {
    return this.state;
  }
}

interface Harness {
  readonly tokens: ScriptedTokenSource;
  readonly metrics: BrokerMetrics;
  readonly clock: FakeClock;
  logged(): string;
  get(path: string, method?: string): Promise<HttpAnswer>;
}

const running: RunningListener[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((listener) => listener.close(0)));
});

async function startOps(tokenExpiresAtMs?: (now: number) => number): Promise<Harness> {
  const clock = new FakeClock();
  const tokens = new ScriptedTokenSource();
  const state = {
    now: () => clock.now(),
    defaultTokenExpiresAtMs: () => tokenExpiresAtMs?.(clock.now()),
    anyRefreshFailing: () => false,
  };
  const metrics = new BrokerMetrics([new PrometheusMetrics(state)]);
  const log = captureLog();
  const app = createOpsApp({
    metrics,
    tokens,
    clock,
    logger: createLogger("info", log.stream),
    explain: async (code) => explainingCheck(code),
  });
  const listener = await listen(app, "127.0.0.1", 0, "BROKER_OPS_PORT");
  running.push(listener);
  return {
    tokens,
    metrics,
    clock,
    logged: log.text,
    get: (path, method) => httpGet(listener.port, path, { method }),
  };
}

function summary(answer: HttpAnswer): Record<string, unknown> {
  return {
    status: answer.status,
    type: answer.headers["content-type"],
    body: answer.body,
    nosniff: answer.headers["x-content-type-options"],
    poweredBy: answer.headers["x-powered-by"],
  };
}

const plain = "text/plain; charset=utf-8";

function textAnswer(status: number, body: string): Record<string, unknown> {
  return { status, type: plain, body, nosniff: "nosniff", poweredBy: undefined };
}

describe("/metrics", () => {
  it("exports the broker series (exact names and types) and Node's process metrics as Prometheus text", async () => {
    const ops = await startOps((now) => now + 600_000);
    ops.metrics.metadataRequest("service_account_token", 200);
    const answer = await ops.get("/metrics");
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    const types = answer.body
      .split("\n")
      .filter((line) => line.startsWith("# TYPE token_broker_"))
      .sort();
    expect(types).toEqual([
      "# TYPE token_broker_cache_lookups_total counter",
      "# TYPE token_broker_degraded gauge",
      "# TYPE token_broker_metadata_errors_total counter",
      "# TYPE token_broker_metadata_requests_total counter",
      "# TYPE token_broker_refresh_failures_total counter",
      "# TYPE token_broker_token_expiry_seconds gauge",
      "# TYPE token_broker_upstream_calls_total counter",
      "# TYPE token_broker_upstream_duration_seconds histogram",
    ]);
    const lines = answer.body.split("\n");
    expect(lines).toContain(
      'token_broker_metadata_requests_total{route="service_account_token",status="200"} 1',
    );
    expect(lines).toContain("token_broker_token_expiry_seconds 600");
    expect(lines).toContain("# TYPE process_cpu_user_seconds_total counter");
    expect(lines).toContain("# TYPE nodejs_heap_size_used_bytes gauge");
  });
});

describe("/healthz", () => {
  it("is 200 ok while the process runs, whatever the token source says", async () => {
    const ops = await startOps();
    ops.tokens.answer = () =>
      Promise.reject(new BrokerError("AWS_STS_UNAVAILABLE", "AWS STS is unreachable"));
    ops.tokens.state = {
      ready: false,
      failure: new BrokerError("AWS_STS_UNAVAILABLE", "AWS STS is unreachable"),
    };
    expect(summary(await ops.get("/healthz"))).toEqual(textAnswer(200, "ok"));
    expect(ops.tokens.lookups).toBe(0);
  });
});

describe("/readyz", () => {
  it("is 200 ready after a real token lookup", async () => {
    const ops = await startOps();
    expect(summary(await ops.get("/readyz"))).toEqual(textAnswer(200, "ready"));
    expect(ops.tokens.lookups).toBe(1);
  });

  /** The log's lines as objects. */
  const logLines = (ops: Harness) =>
    ops
      .logged()
      .trim()
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as Record<string, unknown>);

  it("names the failure behind a token served from cache by its code only", async () => {
    const ops = await startOps();
    const detail =
      "IAM Credentials is unavailable (HTTP 503) for broker@demo-project.iam.gserviceaccount.com; retrying";
    ops.tokens.state = {
      ready: true,
      degraded: true,
      failure: new BrokerError("IMPERSONATION_UNAVAILABLE", detail),
    };
    const answer = await ops.get("/readyz");
    expect(summary(answer)).toEqual(textAnswer(200, "ready, degraded: IMPERSONATION_UNAVAILABLE"));
    expect(answer.body).not.toContain("demo-project");
  });

  it("is 503 with the code and the doctor check that explains it; the detail goes to the log only", async () => {
    const ops = await startOps();
    const detail =
      "impersonating broker@demo-project.iam.gserviceaccount.com was refused (PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied); grant roles/iam.workloadIdentityUser on broker@demo-project.iam.gserviceaccount.com to the AWS role's federated principal";
    ops.tokens.answer = () => Promise.reject(new BrokerError("IMPERSONATION_DENIED", detail));
    expect(summary(await ops.get("/readyz"))).toEqual(
      textAnswer(503, "not ready: IMPERSONATION_DENIED (doctor check: impersonation)"),
    );
    expect(logLines(ops)).toEqual([
      expect.objectContaining({ level: 40, code: "IMPERSONATION_DENIED", msg: `not ready: ${detail}` }),
    ]);
  });

  it("names the doctor check of a degraded broker's failure too, and only the code where no check explains it", async () => {
    const ops = await startOps();
    const pool = "projects/987654321098/locations/global/workloadIdentityPools/aws-pool";
    ops.tokens.state = {
      ready: true,
      degraded: true,
      failure: new BrokerError("GOOGLE_STS_REJECTED", `Google STS rejected the AWS token (${pool})`),
    };
    expect(summary(await ops.get("/readyz"))).toEqual(
      textAnswer(200, "ready, degraded: GOOGLE_STS_REJECTED (doctor check: google-sts)"),
    );
    ops.tokens.answer = () =>
      Promise.reject(
        new BrokerError("GOOGLE_STS_UNAVAILABLE", "Google STS is unavailable (HTTP 503); retrying"),
      );
    expect(summary(await ops.get("/readyz"))).toEqual(textAnswer(503, "not ready: GOOGLE_STS_UNAVAILABLE"));
  });

  it(`is 503 UPSTREAM_TIMEOUT once the lookup has taken ${readinessDeadlineMs} ms`, async () => {
    const ops = await startOps();
    let asked: () => void = () => undefined;
    const lookupStarted = new Promise<void>((resolve) => {
      asked = resolve;
    });
    ops.tokens.answer = () => {
      asked();
      return new Promise<never>(() => undefined);
    };
    const pending = ops.get("/readyz");
    await lookupStarted;
    await ops.clock.advance(readinessDeadlineMs);
    expect(summary(await pending)).toEqual(textAnswer(503, "not ready: UPSTREAM_TIMEOUT"));
    expect(logLines(ops)).toEqual([
      expect.objectContaining({
        code: "UPSTREAM_TIMEOUT",
        msg: `not ready: no token within ${readinessDeadlineMs} ms for the readiness check: upstream is slow or unreachable`,
      }),
    ]);
  });

  it("is 503 with a generic text for an unexpected failure, whose details go to the log only", async () => {
    const ops = await startOps();
    ops.tokens.answer = () => Promise.reject(new RangeError("internal detail 7f3a"));
    const answer = await ops.get("/readyz");
    expect(summary(answer)).toEqual(
      textAnswer(503, "The token source failed unexpectedly; the reason is in the broker log"),
    );
    const [line] = ops.logged().trim().split("\n");
    expect(JSON.parse(line ?? "{}")).toMatchObject({
      level: 50,
      msg: "readiness token lookup failed unexpectedly",
      err: { type: "RangeError", message: "internal detail 7f3a" },
    });
  });
});

describe("other requests", () => {
  it("unknown paths are 404", async () => {
    const ops = await startOps();
    expect(summary(await ops.get("/computeMetadata/v1/instance/service-accounts/default/token"))).toEqual(
      textAnswer(404, "Not found: the ops listener serves /metrics, /healthz and /readyz"),
    );
  });

  it("methods other than GET are 405 with Allow: GET", async () => {
    const ops = await startOps();
    for (const method of ["POST", "PUT", "DELETE"]) {
      const answer = await ops.get("/readyz", method);
      expect(summary(answer)).toEqual(textAnswer(405, "Only GET is supported on the ops listener"));
      expect(answer.headers.allow).toBe("GET");
    }
    const head = await ops.get("/metrics", "HEAD");
    expect(summary(head)).toEqual(textAnswer(405, ""));
    expect(ops.tokens.lookups).toBe(0);
  });
});
