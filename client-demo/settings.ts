/**
 * The demo workload's settings, read from the environment once per sandbox or container. None is a
 * credential: the libraries find the broker through GCE_METADATA_HOST and METADATA_SERVER_DETECTION.
 */
export interface DemoSettings {
  /** GOOGLE_BUCKET, required. */
  readonly bucket: string;
  /** GOOGLE_BQ_DATASET, required. */
  readonly dataset: string;
  /** GOOGLE_BQ_TABLE, required. */
  readonly table: string;
  /** GOOGLE_PROJECT_ID, required. */
  readonly projectId: string;
  /**
   * GOOGLE_STORAGE_ENDPOINT: the library's `apiEndpoint`, for Private Service Connect or an
   * emulator; unset = Google's public endpoint.
   */
  readonly storageEndpoint: string | undefined;
  /** GOOGLE_BIGQUERY_ENDPOINT: as `storageEndpoint`, for BigQuery. */
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
