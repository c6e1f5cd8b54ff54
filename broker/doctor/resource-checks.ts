import { BigQuery } from "@google-cloud/bigquery";
import { Storage } from "@google-cloud/storage";
import { OAuth2Client } from "google-auth-library";
import type { AccessToken } from "../tokens.ts";
import { type Check, type DoctorEndpoints, fail, need, pass, type ResourceUri } from "./check.ts";

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

/** An auth client that presents exactly the token the broker would serve, as an SDK would get it. */
function bearer(token: AccessToken): OAuth2Client {
  const client = new OAuth2Client();
  client.setCredentials({ access_token: token.token, expiry_date: token.expiresAtMs });
  return client;
}

async function held(
  uri: ResourceUri,
  token: AccessToken,
  endpoints: DoctorEndpoints,
): Promise<readonly string[]> {
  const authClient = bearer(token);
  if (uri.startsWith("gs://")) {
    const storage = new Storage({
      authClient,
      apiEndpoint: endpoints.storageUrl,
      // The library sends no credentials to a non-default endpoint unless told to.
      useAuthWithCustomEndpoint: true,
      retryOptions: { autoRetry: false },
    });
    const [answer] = await storage.bucket(uri.slice(5)).iam.testPermissions([kinds.gs.permission]);
    return Object.entries(answer).flatMap(([permission, granted]) => (granted ? [permission] : []));
  }
  const [project = "", dataset = "", table = ""] = uri.slice(5).split(".");
  const bigquery = new BigQuery({
    projectId: project,
    authClient,
    apiEndpoint: endpoints.bigqueryUrl,
    autoRetry: false,
  });
  const [answer] = await bigquery.dataset(dataset).table(table).testIamPermissions([kinds.bq.permission]);
  return answer.permissions ?? [];
}

function grantCommand(uri: ResourceUri, member: string): string {
  if (uri.startsWith("gs://")) {
    return `gcloud storage buckets add-iam-policy-binding ${uri} --member="${member}" --role=${kinds.gs.role}`;
  }
  const [project, dataset, table] = uri.slice(5).split(".");
  return `bq add-iam-policy-binding --member="${member}" --role=${kinds.bq.role} ${project}:${dataset}.${table}`;
}

/** `testIamPermissions` on the resource with the token SDKs would get from the broker. */
export function resourceCheck(uri: ResourceUri, endpoints: () => DoctorEndpoints): Check {
  const { permission } = uri.startsWith("gs://") ? kinds.gs : kinds.bq;
  return {
    id: `resource:${uri}`,
    async run(facts) {
      const token = need(facts.servedToken, "the served token");
      const member = need(facts.servedMember, "the served identity");
      try {
        const granted = await held(uri, token, endpoints());
        if (granted.includes(permission)) return pass(`${member} holds ${permission}`);
        return fail(`${member} lacks ${permission} on ${uri}`, grantCommand(uri, member));
      } catch (error) {
        const status = (error as { code?: unknown }).code;
        const message = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
        if (status === 404)
          return fail(`${uri} does not exist (${message})`, `create ${uri}, or correct the name`);
        return fail(
          `testIamPermissions on ${uri} failed (HTTP ${String(status)}: ${message.slice(0, 200)})`,
          "check the resource name and that its API is enabled in the project",
        );
      }
    },
  };
}
