import type { SessionCredentials } from "../cloud/aws-sts.ts";
import type { Cloud } from "../cloud/cloud.ts";
import type { LocalLambda } from "./local-lambda.ts";

/** What changed outside the snapshot while it was restored. */
export interface Restored {
  /** The credentials the container endpoint hands out from the restore on. */
  readonly credentials: SessionCredentials;
  /** The access key handed out before (now revoked at STS). */
  readonly previousAccessKeyId: string;
  /** Connections the hermetic cloud held at the restore and destroyed. */
  readonly droppedConnections: number;
}

/**
 * Restores a SnapStart sandbox as Lambda resumes one in a new place, possibly days later: while
 * it is still frozen the container credentials rotate (the old ones stop working) and every
 * connection the cloud holds is destroyed, so nothing opened before the snapshot survives; the
 * wall clock moves by `advanceClockMs` (the sandbox needs `shiftableClock`); then it thaws.
 */
export async function restoreSnapshot(
  lambda: LocalLambda,
  cloud: Cloud,
  options: { advanceClockMs?: number } = {},
): Promise<Restored> {
  const previousAccessKeyId = cloud.containerCredentials.current().accessKeyId;
  let credentials: SessionCredentials | undefined;
  let droppedConnections = 0;
  await lambda.restore({
    ...options,
    beforeThaw: () => {
      credentials = cloud.containerCredentials.rotate({
        clockAheadMs: lambda.clockOffsetMs + (options.advanceClockMs ?? 0),
      });
      droppedConnections = cloud.dropConnections();
    },
  });
  if (credentials === undefined) throw new Error("the restore did not rotate the credentials");
  return { credentials, previousAccessKeyId, droppedConnections };
}
