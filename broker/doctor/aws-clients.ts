import { IAMClient } from "@aws-sdk/client-iam";
import { STSClient } from "@aws-sdk/client-sts";
import { awsClientSettings } from "../aws-identity.ts";

/** The AWS clients the doctor asks: STS (who am I, mint) and IAM (federation, policy simulator). */
export interface AwsClients {
  readonly sts: STSClient;
  readonly iam: IAMClient;
}

export type AwsCredentialsProvider = NonNullable<ConstructorParameters<typeof IAMClient>[0]>["credentials"];

/**
 * Both clients as the broker builds its STS client (createStsClient: the region's endpoint, no
 * SDK retries, bounded waits); AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL_IAM name the endpoints.
 * Credentials come from `credentials`, else the SDK's default chain; `sts` is the broker's own.
 */
export function awsClients(
  region: string,
  options: { readonly credentials?: AwsCredentialsProvider; readonly sts?: STSClient },
): AwsClients {
  const settings = {
    ...awsClientSettings(region),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
  };
  return { sts: options.sts ?? new STSClient(settings), iam: new IAMClient(settings) };
}
