import { readFileSync } from "node:fs";
import { GoogleAuth } from "google-auth-library";
import { evaluateAttributes, maxSubjectBytes } from "./attributes.ts";
import { defineCheck, type Failure, fail, type MappedSubject, pass, skip } from "./check.ts";
import { providerCommand } from "./gcloud-names.ts";

/**
 * The fields of a workload identity pool provider the chain depends on, as the IAM API's
 * `providers.get` and `gcloud iam workload-identity-pools providers describe --format=json` give them.
 */
export interface ProviderResource {
  readonly name?: string;
  readonly state?: string;
  readonly disabled?: boolean;
  readonly attributeMapping?: Readonly<Record<string, string>>;
  readonly attributeCondition?: string;
  readonly oidc?: { readonly issuerUri?: string; readonly allowedAudiences?: readonly string[] };
}

const cloudPlatform = "https://www.googleapis.com/auth/cloud-platform";

/** The provider as read; or why it cannot be judged (a failure), or why it was not read (a skip). */
type Loaded =
  | { readonly resource: ProviderResource; readonly from: string }
  | { readonly failure: Failure }
  | { readonly unread: string };

function readProviderFile(file: string): Loaded {
  try {
    return { resource: JSON.parse(readFileSync(file, "utf8")) as ProviderResource, from: file };
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? "not valid JSON";
    return {
      failure: fail(
        `--provider ${file} cannot be read as JSON (${reason})`,
        "write it with gcloud iam workload-identity-pools providers describe … --format=json > FILE",
      ),
    };
  }
}

/** `providers.get` with the caller's Google application-default credentials. */
async function readProviderApi(iamUrl: string, audience: string, signal: AbortSignal): Promise<Loaded> {
  const name = audience.replace(/^\/\/iam\.googleapis\.com\//, "");
  const url = `${iamUrl}/v1/${name}`;
  try {
    const client = await new GoogleAuth({ scopes: [cloudPlatform] }).getClient();
    const response = await client.request<ProviderResource>({ url, signal, retry: false });
    return { resource: response.data, from: "the IAM API" };
  } catch (error) {
    const status = (error as { status?: number; response?: { status?: number } }).response?.status;
    if (status === 404) {
      return {
        failure: fail(
          `the IAM API has no provider ${name}: BROKER_AUDIENCE names a provider that does not exist`,
          `create it (infra/gcp) or correct BROKER_AUDIENCE; list the pool's providers with gcloud iam workload-identity-pools providers list --workload-identity-pool=${name.split("/")[5]} --location=global`,
        ),
      };
    }
    const reason =
      status === undefined
        ? error instanceof Error
          ? error.message.split("\n")[0]
          : "error"
        : `HTTP ${status}`;
    return {
      unread: `could not read the provider through the IAM API (${reason}); application-default credentials need iam.workloadIdentityPoolProviders.get (roles/iam.workloadIdentityPoolViewer), or pass --provider FILE`,
    };
  }
}

/**
 * The provider's issuer, audiences, mapping and condition against the JWT's claims; it provides
 * `google.subject` as the mapping gives it, or as Google's default mapping (`sub`) when not read.
 */
export const providerCheck = defineCheck({
  id: "provider",
  needs: ["providerSource", "config", "endpoints", "claims"],
  provides: ["subject", "attributes"],
  async run({ providerSource: source, config, endpoints, claims }, signal) {
    const assumed: MappedSubject = { value: String(claims.sub ?? ""), fromProvider: false };
    if (source === undefined) {
      return skip(
        "pass --provider FILE or --google-provider to check the provider's issuer, audiences, mapping and condition",
        { subject: assumed, attributes: undefined },
      );
    }
    const loaded =
      "file" in source
        ? readProviderFile(source.file)
        : await readProviderApi(endpoints.googleIamUrl, config.audience, signal);
    if ("failure" in loaded) return loaded.failure;
    if ("unread" in loaded) return skip(loaded.unread, { subject: assumed, attributes: undefined });
    const { resource, from } = loaded;
    const command = (flags: string) => providerCommand(config.audience, "update-oidc", flags);
    const expectedName = config.audience.replace(/^\/\/iam\.googleapis\.com\//, "");
    if (resource.name !== undefined && resource.name !== expectedName) {
      return fail(
        `${from} describes ${resource.name}, but BROKER_AUDIENCE names ${expectedName}`,
        `describe the provider BROKER_AUDIENCE names, or set BROKER_AUDIENCE=//iam.googleapis.com/${resource.name}`,
      );
    }
    if (resource.state !== undefined && resource.state !== "ACTIVE") {
      return fail(`the provider is ${resource.state}`, providerCommand(config.audience, "undelete"));
    }
    if (resource.disabled === true) return fail("the provider is disabled", command("--no-disabled"));
    const issuerUri = resource.oidc?.issuerUri;
    if (issuerUri === undefined) {
      return fail(
        "the provider is not an OIDC provider, so it cannot accept the AWS JWT",
        "create an OIDC provider with the account's issuer URL (infra/gcp)",
      );
    }
    if (issuerUri !== claims.iss) {
      return fail(
        `the provider's issuer is ${issuerUri}, the JWT's iss is ${claims.iss}`,
        command(`--issuer-uri=${claims.iss}`),
      );
    }
    const allowed = resource.oidc?.allowedAudiences ?? [];
    if (allowed.length > 0 && !allowed.includes(config.audience)) {
      return fail(
        `the provider's allowed audiences [${allowed.join(", ")}] do not admit BROKER_AUDIENCE ${config.audience}`,
        command(`--allowed-audiences=${[...allowed, config.audience].join(",")}`),
      );
    }
    const mapping = resource.attributeMapping ?? { "google.subject": "assertion.sub" };
    const evaluation = evaluateAttributes(mapping, resource.attributeCondition, claims);
    const shown = evaluation.mapped.map((attr) => `${attr.target}=${attr.shown}`).join(" ");
    const broken = evaluation.mapped.find((attr) => attr.error !== undefined);
    if (broken !== undefined) {
      return fail(
        `the mapping ${broken.target}=${broken.expression} does not evaluate: ${broken.error}`,
        command(
          `--attribute-mapping=${Object.entries({ ...mapping, [broken.target]: "assertion.sub" })
            .map(([k, v]) => `${k}=${v}`)
            .join(",")}`,
        ),
      );
    }
    const subject = evaluation.mapped.find((attr) => attr.target === "google.subject")?.value;
    if (typeof subject !== "string" || subject === "") {
      return fail(
        `the mapping gives no google.subject (${shown})`,
        command("--attribute-mapping=google.subject=assertion.sub"),
      );
    }
    const bytes = Buffer.byteLength(subject);
    if (bytes > maxSubjectBytes) {
      return fail(
        `google.subject is ${bytes} bytes, Google allows at most ${maxSubjectBytes} (${shown})`,
        `map a shorter value, e.g. the role ARN: ${command("--attribute-mapping=google.subject=assertion.sub")}`,
      );
    }
    const condition = evaluation.condition;
    if (condition !== undefined && !condition.holds) {
      if ("error" in condition) {
        return fail(
          `the attribute condition does not evaluate: ${condition.error} (${shown})`,
          `guard claims the token may lack with has(…), then ${command("--attribute-condition='<the corrected condition>'")}`,
        );
      }
      // The same condition with only its false clause widened to this role.
      const admitting = condition.clauses
        .map((clause) =>
          clause === condition.falseClause ? `(${clause} || assertion.sub == "${claims.sub}")` : clause,
        )
        .join(" && ");
      return fail(
        `the attribute condition is false at \`${condition.falseClause}\` (${shown})`,
        `admit this role: ${command(`--attribute-condition='${admitting}'`)}`,
      );
    }
    const conditionText =
      condition === undefined ? "no attribute condition" : "the attribute condition holds";
    const attributes = Object.fromEntries(
      evaluation.mapped.flatMap(({ target, value }) =>
        target.startsWith("attribute.") && typeof value === "string" ? [[target.slice(10), value]] : [],
      ),
    );
    return pass(`issuer and audience match; ${shown} (${bytes} bytes); ${conditionText}`, {
      subject: { value: subject, fromProvider: true },
      attributes,
    });
  },
});
