import { OAuth2Client } from "google-auth-library";
import type { AccessToken } from "../tokens.ts";
import { type Check, type DoctorEndpoints, defineCheck, fail, pass, type ResourceUri } from "./check.ts";

/** What a workload needs on each kind of resource, and the role that grants it. */
const kinds = {
  gs: { permission: "storage.objects.create", role: "roles/storage.objectCreator" },
  bq: { permission: "bigquery.tables.updateData", role: "roles/bigquery.dataEditor" },
} as const;

/** `gs://BUCKET` or `bq://PROJECT.DATASET.TABLE`; anything else is a usage error. */
export function parseResource(raw: string): ResourceUri | undefined {
  return /^gs:\/\/[a-z0-9][a-z0-9._-]{1,221}$/.test(raw) ||
    /^bq:\/\/[a-z][a-z0-9-]{4,28}[a-z0-9]\.[A-Za-z0-9_]{1,1024}\.[A-Za-z0-9_$-]{1,1024}$/.test(raw)
    ? (raw as ResourceUri)
    : undefined;
}

/**
 * `testIamPermissions` is one call; it goes through google-auth-library's own request (the one
 * the broker already carries) rather than @google-cloud/storage and @google-cloud/bigquery, which
 * would weigh on the sidecar's single file, and its memory, for a command it seldom runs.
 */
async function held(
  uri: ResourceUri,
  token: AccessToken,
  endpoints: DoctorEndpoints,
  signal: AbortSignal,
): Promise<readonly string[]> {
  // The token the broker would serve, presented as an SDK presents it; never refreshed.
  const client = new OAuth2Client();
  client.setCredentials({ access_token: token.token, expiry_date: token.expiresAtMs });
  if (uri.startsWith("gs://")) {
    const bucket = encodeURIComponent(uri.slice(5));
    const response = await client.request<{ permissions?: string[] }>({
      url: `${endpoints.storageUrl}/storage/v1/b/${bucket}/iam/testPermissions`,
      params: { permissions: kinds.gs.permission },
      retry: false,
      signal,
    });
    return response.data.permissions ?? [];
  }
  const [project = "", dataset = "", table = ""] = uri.slice(5).split(".");
  const response = await client.request<{ permissions?: string[] }>({
    url: `${endpoints.bigqueryUrl}/bigquery/v2/projects/${project}/datasets/${dataset}/tables/${table}:testIamPermissions`,
    method: "POST",
    data: { permissions: [kinds.bq.permission] },
    retry: false,
    signal,
  });
  return response.data.permissions ?? [];
}

function grantCommand(uri: ResourceUri, member: string): string {
  if (uri.startsWith("gs://")) {
    return `gcloud storage buckets add-iam-policy-binding ${uri} --member="${member}" --role=${kinds.gs.role}`;
  }
  const [project, dataset, table] = uri.slice(5).split(".");
  return `bq add-iam-policy-binding --member="${member}" --role=${kinds.bq.role} ${project}:${dataset}.${table}`;
}

/** `testIamPermissions` on the resource with the token SDKs would get from the broker. */
export function resourceCheck(uri: ResourceUri): Check {
  const { permission } = uri.startsWith("gs://") ? kinds.gs : kinds.bq;
  return defineCheck({
    id: `resource:${uri}`,
    needs: ["served", "endpoints", "workload"],
    provides: [],
    async run({ served: { token, member }, endpoints, workload }, signal) {
      try {
        const granted = await held(uri, token, endpoints, signal);
        // The federated token of a function or tagged workload: its own grant is the one to name.
        const own = workload.grantee !== member && !member.startsWith("serviceAccount:");
        const who = own ? `${member} (${workload.describes})` : member;
        if (granted.includes(permission)) return pass(`${who} holds ${permission}`);
        if (!own) return fail(`${member} lacks ${permission} on ${uri}`, grantCommand(uri, member));
        const { role } = uri.startsWith("gs://") ? kinds.gs : kinds.bq;
        return fail(
          `${who} lacks ${permission} on ${uri}: missing ${role} on ${uri} for ${workload.grantee}`,
          grantCommand(uri, workload.grantee),
        );
      } catch (error) {
        const response = (error as { response?: { status?: number; data?: unknown } }).response;
        const message = String(
          (response?.data as { error?: { message?: unknown } } | undefined)?.error?.message ?? "no answer",
        );
        if (response?.status === 404)
          return fail(`${uri} does not exist (${message})`, `create ${uri}, or correct the name`);
        return fail(
          `testIamPermissions on ${uri} failed (${response?.status === undefined ? "no HTTP answer" : `HTTP ${response.status}`}: ${message.slice(0, 200)})`,
          "check the resource name and that its API is enabled in the project",
        );
      }
    },
  });
}
