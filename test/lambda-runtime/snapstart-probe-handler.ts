import { GetWebIdentityTokenCommand, STSClient } from "@aws-sdk/client-sts";

/**
 * A SnapStart function for the restore tests: the AWS SDK's default credential chain (the
 * container endpoint, as SnapStart gives it) and one GetWebIdentityToken call during init, so
 * the snapshot holds cached credentials and a keep-alive connection to STS. Each invocation
 * calls again and reports whether that worked.
 */

const audience = process.env.PROBE_AUDIENCE ?? "";
const sts = new STSClient({});
const mint = () =>
  sts.send(new GetWebIdentityTokenCommand({ Audience: [audience], SigningAlgorithm: "RS256" }));
await mint();

export async function handler(): Promise<{ ok: boolean; error?: string }> {
  try {
    await mint();
    return { ok: true };
  } catch (error) {
    return { ok: false, error: `${(error as Error).name}: ${(error as Error).message}` };
  }
}
