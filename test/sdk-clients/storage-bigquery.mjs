// A workload writing to GCS and BigQuery with the Google client libraries and no credentials
// code. The endpoints are the libraries' documented `apiEndpoint` setting (here: the hermetic
// cloud). Prints what happened, as JSON on one line.
import { BigQuery } from "@google-cloud/bigquery";
import { Storage } from "@google-cloud/storage";

const env = process.env;
const storage = new Storage({ apiEndpoint: env.GCS_ENDPOINT, useAuthWithCustomEndpoint: true });
const bigquery = new BigQuery({ apiEndpoint: env.BIGQUERY_ENDPOINT, projectId: env.PROJECT_ID });

await storage.bucket(env.BUCKET).file(env.OBJECT_NAME).save(env.OBJECT_CONTENT, { resumable: false });
await bigquery
  .dataset(env.DATASET)
  .table(env.TABLE)
  .insert([{ timestamp: env.ROW_TIMESTAMP, message: env.ROW_MESSAGE }]);
const results = {};
try {
  await storage.bucket(env.FORBIDDEN_BUCKET).file(env.OBJECT_NAME).save("denied", { resumable: false });
} catch (error) {
  results.forbidden = { code: error.code, message: error.message };
}
console.log(JSON.stringify(results));
