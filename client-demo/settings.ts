/**
 * The demo workload's settings, read from the environment once per sandbox or container.
 *
 *   GOOGLE_BUCKET, GOOGLE_BQ_DATASET, GOOGLE_BQ_TABLE, GOOGLE_PROJECT_ID   required
 *   GOOGLE_STORAGE_ENDPOINT, GOOGLE_BIGQUERY_ENDPOINT   optional: the libraries' `apiEndpoint`
 *     setting, for a private endpoint (Private Service Connect) or an emulator. Unset = Google's
 *     public endpoints.
 *
 * There is no credential setting: the Google libraries find the token broker through
 * GCE_METADATA_HOST and METADATA_SERVER_DETECTION, which the layer's deployment sets.
 */
export interface DemoSettings {
  readonly bucket: string;
  readonly dataset: string;
  readonly table: string;
  readonly projectId: string;
  readonly storageEndpoint: string | undefined;
  readonly bigqueryEndpoint: string | undefined;
}

export function readDemoSettings(env: Readonly<Record<string, string | undefined>>): DemoSettings {
  const required = (name: string, example: string): string => {
    const value = env[name]?.trim();
    if (value === undefined || value === "") {
      throw new Error(`${name} is required; for example ${name}=${example}`);
    }
    return value;
  };
  const optional = (name: string): string | undefined => env[name]?.trim() || undefined;
  return {
    bucket: required("GOOGLE_BUCKET", "my-demo-bucket"),
    dataset: required("GOOGLE_BQ_DATASET", "demo_dataset"),
    table: required("GOOGLE_BQ_TABLE", "events"),
    projectId: required("GOOGLE_PROJECT_ID", "my-project"),
    storageEndpoint: optional("GOOGLE_STORAGE_ENDPOINT"),
    bigqueryEndpoint: optional("GOOGLE_BIGQUERY_ENDPOINT"),
  };
}
