import { Token } from "aws-cdk-lib";
import { audiencePattern } from "../../broker/config.ts";

/** The parts of a provider audience, as Terraform in infra/gcp names them. */
export interface ProviderAudienceParts {
  readonly projectNumber: string;
  readonly poolId: string;
  readonly providerId: string;
}

type Part = keyof ProviderAudienceParts;

/** What each part must be and where to read it, for the error that names a wrong one. */
const partRules: Readonly<Record<Part, string>> = {
  projectNumber:
    "is not a project number; use the project's digits, not its id: gcloud projects describe <PROJECT_ID> --format='value(projectNumber)'",
  poolId:
    "is not a workload identity pool id (4 to 32 lowercase letters, digits and hyphens); see gcloud iam workload-identity-pools list --location=global",
  providerId:
    "is not a provider id (4 to 32 lowercase letters, digits and hyphens); see gcloud iam workload-identity-pools providers list --workload-identity-pool=<POOL> --location=global",
};

/** A valid audience's parts: a part is checked by putting it in here and testing the broker's own pattern. */
const exampleParts: ProviderAudienceParts = {
  projectNumber: "123456789012",
  poolId: "aws-pool",
  providerId: "aws-provider",
};

function audienceOf(parts: ProviderAudienceParts): string {
  return `//iam.googleapis.com/projects/${parts.projectNumber}/locations/global/workloadIdentityPools/${parts.poolId}/providers/${parts.providerId}`;
}

/** The first part the broker would refuse, said as `poolId "AWS_Pool" is not …`; a deploy-time token passes. */
function partProblem(parts: ProviderAudienceParts): string | undefined {
  for (const part of Object.keys(partRules) as Part[]) {
    const value = parts[part];
    if (Token.isUnresolved(value) || audiencePattern.test(audienceOf({ ...exampleParts, [part]: value })))
      continue;
    return `${part} "${value}" ${partRules[part]}`;
  }
  return undefined;
}

/**
 * `//iam.googleapis.com/projects/<NUMBER>/locations/global/workloadIdentityPools/<POOL>/providers/<PROVIDER>`,
 * the audience the broker requests and the role may mint a JWT for. Each part may be a CDK token
 * (a parameter, another stack's output); a literal part the broker would refuse throws here.
 */
export function providerAudience(parts: ProviderAudienceParts): string {
  const problem = partProblem(parts);
  if (problem !== undefined) throw new Error(`token-broker: providerAudience: ${problem}`);
  return audienceOf(parts);
}

/**
 * Why the broker would refuse an audience, in one line that names the fix; undefined when it
 * would take it, or when it holds a deploy-time token (checked by the broker when it starts).
 */
export function audienceProblem(audience: string): string | undefined {
  if (Token.isUnresolved(audience) || audiencePattern.test(audience)) return undefined;
  // Also the provider's resource name (projects/…, as gcloud prints it) and an https:// form.
  const shaped =
    /^(?:https:)?(?:\/\/iam\.googleapis\.com\/)?projects\/([^/]+)\/locations\/global\/workloadIdentityPools\/([^/]+)\/providers\/([^/]+)$/.exec(
      audience,
    );
  const [, projectNumber = "", poolId = "", providerId = ""] = shaped ?? [];
  const parts = { projectNumber, poolId, providerId };
  const problem = shaped ? partProblem(parts) : undefined;
  if (problem !== undefined) return `token-broker: audience "${audience}": ${problem}`;
  if (shaped) {
    return `token-broker: audience "${audience}" is not in the audience form ${audienceOf(parts)}; use providerAudience({ projectNumber: "${projectNumber}", poolId: "${poolId}", providerId: "${providerId}" })`;
  }
  return `token-broker: audience "${audience}" is not a provider audience; build it with providerAudience({ projectNumber, poolId, providerId }), e.g. ${audienceOf(exampleParts)}`;
}
