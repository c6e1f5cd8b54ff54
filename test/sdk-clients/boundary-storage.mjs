// A workload under BROKER_ACCESS_BOUNDARY, with the Google client libraries and no credentials
// code: each call's outcome (or Google's refusal: status and message), as JSON on one line.
import { BigQuery } from "@google-cloud/bigquery";
import { Storage } from "@google-cloud/storage";

const env = process.env;
const storage = new Storage({
  apiEndpoint: env.GCS_ENDPOINT,
  useAuthWithCustomEndpoint: true,
  retryOptions: { autoRetry: false },
});
const bigquery = new BigQuery({ apiEndpoint: env.BIGQUERY_ENDPOINT, projectId: env.PROJECT_ID });
const bucket = storage.bucket(env.BUCKET);

async function outcome(call) {
  try {
    const value = await call();
    return value === undefined ? { ok: true } : { ok: true, value };
  } catch (error) {
    return { ok: false, code: error.code, message: error.message };
  }
}

const results = {
  inside: await outcome(() => bucket.file(`in/${env.OBJECT_NAME}`).save("inside", { resumable: false })),
  outside: await outcome(() => bucket.file(env.OBJECT_NAME).save("outside", { resumable: false })),
  read: await outcome(async () =>
    (await bucket.file(`in/${env.OBJECT_NAME}`).download())[0].toString("utf8"),
  ),
  bigquery: await outcome(async () => {
    await bigquery
      .dataset(env.DATASET)
      .table(env.TABLE)
      .insert([{ timestamp: env.ROW_TIMESTAMP, message: env.ROW_MESSAGE }]);
  }),
};
console.log(JSON.stringify(results));
