/** The parts of `BROKER_AUDIENCE` that gcloud commands and IAM members name. */
interface ProviderName {
  readonly projectNumber: string;
  readonly pool: string;
  readonly provider: string;
}

function providerName(audience: string): ProviderName {
  const parts =
    /projects\/(\d+)\/locations\/global\/workloadIdentityPools\/([^/]+)\/providers\/([^/]+)$/.exec(audience);
  return { projectNumber: parts?.[1] ?? "", pool: parts?.[2] ?? "", provider: parts?.[3] ?? "" };
}

/** `gcloud iam workload-identity-pools providers <verb> PROVIDER --workload-identity-pool=… --location=global --project=…` */
export function providerCommand(audience: string, verb: string, flags = ""): string {
  const { projectNumber, pool, provider } = providerName(audience);
  return `gcloud iam workload-identity-pools providers ${verb} ${provider} --workload-identity-pool=${pool} --location=global --project=${projectNumber}${flags === "" ? "" : ` ${flags}`}`;
}

/** The federated principal of a subject, as IAM bindings name it. */
export function federatedMember(audience: string, subject: string): string {
  const { projectNumber, pool } = providerName(audience);
  return `principal://iam.googleapis.com/projects/${projectNumber}/locations/global/workloadIdentityPools/${pool}/subject/${subject}`;
}

/** Every identity of the pool whose mapped `attribute.<name>` is `value`, as IAM bindings name it. */
export function principalSetMember(audience: string, attribute: string, value: string): string {
  const { projectNumber, pool } = providerName(audience);
  return `principalSet://iam.googleapis.com/projects/${projectNumber}/locations/global/workloadIdentityPools/${pool}/attribute.${attribute}/${value}`;
}
