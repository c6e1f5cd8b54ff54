import { startCloud } from "../cloud/cloud.ts";
import { chainsByKey } from "./issued-chains.ts";

/*
 * The hermetic cloud as a process of its own, so that it can run on a moved clock (shared-clock.ts)
 * with the broker. `node cloud-process.ts <lifetime seconds> [latency ms]`: Google STS and IAM
 * Credentials issue tokens of that lifetime, and every AWS STS, Google STS and IAM Credentials
 * call is slowed by the latency, if given. Prints one JSON line with the broker's environment
 * (impersonating); when stdin closes, one JSON line with the chains IAM Credentials answered per
 * key (issued-chains.ts), then stops.
 */

const lifetimeSeconds = Number(process.argv[2]);
const latencyMs = Number(process.argv[3] ?? 0);
if (
  !Number.isInteger(lifetimeSeconds) ||
  lifetimeSeconds <= 0 ||
  !Number.isInteger(latencyMs) ||
  latencyMs < 0
) {
  process.stderr.write("usage: cloud-process.ts <token lifetime in seconds> [latency in ms]\n");
  process.exit(2);
}
const cloud = await startCloud();
cloud.googleSts.setExpiresIn(lifetimeSeconds);
cloud.iamCredentials.setLifetimeCap(lifetimeSeconds);
if (latencyMs > 0)
  for (const fake of [cloud.awsSts, cloud.googleSts, cloud.iamCredentials])
    fake.faults.inject({ kind: "slow", ms: latencyMs });
process.stdout.write(`${JSON.stringify({ env: cloud.brokerEnv({ impersonate: true }) })}\n`);

process.stdin.resume();
process.stdin.on("end", async () => {
  process.stdout.write(`${JSON.stringify({ chains: chainsByKey(cloud.ledger, "iam-credentials") })}\n`);
  await cloud.close();
  process.exit(0);
});
