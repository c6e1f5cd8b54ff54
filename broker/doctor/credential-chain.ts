import {
  createCredentialChain,
  fromContainerMetadata,
  fromEnv,
  fromHttp,
  fromIni,
  fromInstanceMetadata,
  fromProcess,
  fromTokenFile,
} from "@aws-sdk/credential-providers";

/*
 * The AWS SDK's default credential chain (fromNodeProviderChain), rebuilt from the SDK's own
 * providers in the order it tries them, each link named, so the doctor can say which one found
 * the credentials it then uses for every AWS call.
 */

type Provider = (
  ...properties: Parameters<ReturnType<typeof createCredentialChain>>
) => ReturnType<ReturnType<typeof createCredentialChain>>;

/** No link found credentials; the message names the links asked and what the last one said. */
export class CredentialsNotFound extends Error {
  override readonly name = "CredentialsNotFound";
}

export interface NamedCredentialChain {
  readonly provider: Provider;
  /** The link that found the credentials, once one has. */
  answeredBy(): string | undefined;
}

/** `env` is the process environment the providers read themselves. */
export function namedCredentialChain(
  env: Readonly<Record<string, string | undefined>>,
): NamedCredentialChain {
  let answered: string | undefined;
  const asked: string[] = [];
  const link =
    (source: string, provider: Provider): Provider =>
    async (properties) => {
      asked.push(source);
      const credentials = await provider(properties);
      answered = source;
      return credentials;
    };
  const profile = env.AWS_PROFILE;
  const container = Boolean(
    env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI || env.AWS_CONTAINER_CREDENTIALS_FULL_URI,
  );
  const imdsDisabled = (env.AWS_EC2_METADATA_DISABLED ?? "false") !== "false";
  // With AWS_PROFILE set the SDK takes the profile over keys in the environment; it asks the
  // container endpoint when one is named, else the instance metadata service unless disabled.
  const chain = createCredentialChain(
    ...(profile ? [] : [link("environment (AWS_ACCESS_KEY_ID)", fromEnv())]),
    link(`shared config profile ${profile ?? "default"}`, fromIni()),
    link("credential_process", fromProcess()),
    link("web identity token file (AWS_WEB_IDENTITY_TOKEN_FILE)", fromTokenFile()),
    ...(container
      ? [
          link(
            "container credentials endpoint (ECS task role or Lambda)",
            createCredentialChain(fromHttp(), fromContainerMetadata()),
          ),
        ]
      : imdsDisabled
        ? []
        : [link("EC2 instance metadata (instance profile)", fromInstanceMetadata())]),
  );
  let resolved: ReturnType<Provider> | undefined;
  // Resolved once for the run: the doctor's STS and IAM clients share the answer.
  const provider: Provider = (properties) => {
    resolved ??= chain(properties).catch((error: unknown) => {
      const said =
        error instanceof Error ? (error.message.split("\n")[0] ?? "").slice(0, 200) : String(error);
      throw new CredentialsNotFound(
        `no AWS credentials found (asked ${asked.join(", ")}; the last said: ${said})`,
        {
          cause: error,
        },
      );
    });
    return resolved;
  };
  return { provider, answeredBy: () => answered };
}
