import { BigQuery, type BigQueryOptions } from "@google-cloud/bigquery";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type BigQueryFake, startBigQuery } from "./bigquery.ts";
import { bearerClient, federatedWriter, issueToken, serviceAccount } from "./google-clients.ts";
import { Ledger } from "./ledger.ts";
import { demoWorld as world } from "./world.ts";

let ledger: Ledger;
let bq: BigQueryFake;
let writerToken: string;

beforeAll(() => {
  ledger = new Ledger();
});
// A fresh fake per test: each test asserts the table's exact content and traffic.
beforeEach(async () => {
  bq = await startBigQuery({ world, ledger });
  writerToken = issueToken(ledger, federatedWriter(world));
});
afterEach(() => bq.close());

/** The real client, pointed at the fake only through its documented endpoint setting. */
function bigquery(token: string, options: BigQueryOptions = {}): BigQuery {
  return new BigQuery({
    apiEndpoint: bq.url,
    projectId: world.googleProjectId,
    authClient: bearerClient(token),
    retryOptions: { maxRetryDelay: 1 },
    ...options,
  });
}

const demoTable = (token: string) => bigquery(token).dataset(world.dataset).table(world.table);

async function failure(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Error);
  return error as Record<string, unknown>;
}

const storedJson = () => bq.rows(world.dataset, world.table).map((row) => row.json);

describe("fake BigQuery insertAll with @google-cloud/bigquery", () => {
  it("stores the inserted rows with their values, sent with the exact Bearer", async () => {
    const [response] = await demoTable(writerToken).insert([
      { timestamp: new Date("2026-01-02T03:04:05.678Z"), message: "hello" },
      { timestamp: "2026-01-02 03:04:06", message: "second" },
    ]);

    expect(response).toEqual({ kind: "bigquery#tableDataInsertAllResponse" });
    expect(storedJson()).toEqual([
      { timestamp: "2026-01-02T03:04:05.678Z", message: "hello" },
      { timestamp: "2026-01-02 03:04:06", message: "second" },
    ]);
    for (const row of bq.rows(world.dataset, world.table)) expect(row.insertId).toMatch(/^[0-9a-f-]{36}$/);
    expect(bq.requests()).toEqual([
      {
        operation: "tabledata.insertAll",
        method: "POST",
        path: `/bigquery/v2/projects/${world.googleProjectId}/datasets/${world.dataset}/tables/${world.table}/insertAll?prettyPrint=false`,
        bearer: writerToken,
      },
    ]);
  });

  it("refuses another dataset with BigQuery's 403 Access Denied", async () => {
    const table = bigquery(writerToken).dataset("other_dataset").table(world.table);
    const error = await failure(table.insert([{ timestamp: "2026-01-01 00:00:00", message: "x" }]));
    const name = `${world.googleProjectId}:other_dataset.${world.table}`;
    const message = `Access Denied: Table ${name}: Permission bigquery.tables.updateData denied on table ${name} (or it may not exist).`;
    expect(error).toMatchObject({
      code: 403,
      message,
      errors: [{ message, domain: "global", reason: "accessDenied" }],
    });
    expect(bq.rows("other_dataset", world.table)).toEqual([]);
  });

  it("refuses a principal that is no data writer, even on the demo table", async () => {
    const nobody = issueToken(ledger, serviceAccount(world.serviceAccounts[1]?.email ?? ""));
    const error = await failure(
      demoTable(nobody).insert([{ timestamp: "2026-01-01 00:00:00", message: "x" }]),
    );
    expect(error).toMatchObject({ code: 403, errors: [{ reason: "accessDenied" }] });
    expect(storedJson()).toEqual([]);
  });

  it("inserts as the demo service account, a data writer", async () => {
    const token = issueToken(ledger, serviceAccount(world.serviceAccounts[0]?.email ?? ""));
    await demoTable(token).insert([{ timestamp: 1767225600, message: "from the SA" }]);
    expect(storedJson()).toEqual([{ timestamp: 1767225600, message: "from the SA" }]);
  });

  it("answers 404 for a table that does not exist in the granted dataset", async () => {
    const table = bigquery(writerToken).dataset(world.dataset).table("missing");
    const error = await failure(table.insert([{ message: "x" }]));
    expect(error).toMatchObject({
      code: 404,
      message: `Not found: Table ${world.googleProjectId}:${world.dataset}.missing`,
    });
  });

  it("surfaces an unknown field as a PartialFailureError after the library's partial retries", async () => {
    const row = { timestamp: "2026-01-01 00:00:00", message: "x", colour: "red" };
    const error = await failure(demoTable(writerToken).insert([row]));
    expect(error).toMatchObject({
      name: "PartialFailureError",
      errors: [{ errors: [{ message: "no such field: colour.", reason: "invalid" }], row }],
      response: {
        kind: "bigquery#tableDataInsertAllResponse",
        insertErrors: [
          {
            index: 0,
            errors: [
              { reason: "invalid", location: "colour", debugInfo: "", message: "no such field: colour." },
            ],
          },
        ],
      },
    });
    // The library retries the failed rows 3 times (partialRetries) before giving up.
    expect(bq.calls.get("tabledata.insertAll")).toBe(4);
    expect(storedJson()).toEqual([]);
  });

  it("stops the whole request on one bad row, unless skipInvalidRows", async () => {
    const rows = [
      { timestamp: "2026-01-01 00:00:00", message: "good" },
      { timestamp: "yesterday", message: "bad" },
    ];
    const stopped = await failure(demoTable(writerToken).insert(rows, { partialRetries: 0 }));
    expect(stopped).toMatchObject({
      errors: [
        { errors: [{ reason: "stopped", message: "" }], row: rows[0] },
        {
          errors: [
            {
              reason: "invalid",
              message:
                "Could not parse 'yesterday' as a timestamp. Required format is YYYY-MM-DD HH:MM[:SS[.SSSSSS]] or YYYY/MM/DD HH:MM[:SS[.SSSSSS]]",
            },
          ],
          row: rows[1],
        },
      ],
    });
    expect(storedJson()).toEqual([]);

    const skipped = await failure(
      demoTable(writerToken).insert(rows, { partialRetries: 0, skipInvalidRows: true }),
    );
    expect(skipped).toMatchObject({ errors: [{ errors: [{ reason: "invalid" }], row: rows[1] }] });
    expect(storedJson()).toEqual([rows[0]]);
  });

  it("drops unknown fields under ignoreUnknownValues", async () => {
    await demoTable(writerToken).insert([{ timestamp: "2026-01-01 00:00:00", message: "m", extra: 1 }], {
      ignoreUnknownValues: true,
    });
    expect(storedJson()).toEqual([{ timestamp: "2026-01-01 00:00:00", message: "m" }]);
  });

  it("deduplicates rows by insertId", async () => {
    const rows = [{ insertId: "event-1", json: { timestamp: "2026-01-01 00:00:00", message: "once" } }];
    await demoTable(writerToken).insert(rows, { raw: true });
    await demoTable(writerToken).insert(rows, { raw: true });
    expect(bq.calls.get("tabledata.insertAll")).toBe(2);
    expect(bq.rows(world.dataset, world.table)).toEqual([
      { insertId: "event-1", json: { timestamp: "2026-01-01 00:00:00", message: "once" } },
    ]);
  });

  it("answers 401 to an unknown token and to an expired one", async () => {
    const expired = issueToken(ledger, federatedWriter(world), { expiresInMs: -1000 });
    for (const token of ["ya29.never-issued", expired]) {
      const error = await failure(demoTable(token).insert([{ message: "x" }]));
      expect(error).toMatchObject({
        code: 401,
        errors: [
          {
            message: "Invalid Credentials",
            domain: "global",
            reason: "authError",
            location: "Authorization",
            locationType: "header",
          },
        ],
      });
      expect(error.message).toContain("Request had invalid authentication credentials.");
    }
    expect(storedJson()).toEqual([]);
  });

  it("answers 403 insufficientPermissions to a token without a BigQuery scope", async () => {
    const token = issueToken(ledger, federatedWriter(world), {
      scopes: ["https://www.googleapis.com/auth/devstorage.read_write"],
    });
    const error = await failure(demoTable(token).insert([{ message: "x" }]));
    expect(error).toMatchObject({ code: 403, errors: [{ reason: "insufficientPermissions" }] });
  });

  it("a 503 once is retried by the library and the row lands once", async () => {
    bq.faults.inject({ kind: "status", status: 503, times: 1 });
    await demoTable(writerToken).insert([{ timestamp: "2026-01-01 00:00:00", message: "retried" }]);
    expect(bq.calls.get("tabledata.insertAll")).toBe(2);
    expect(storedJson()).toEqual([{ timestamp: "2026-01-01 00:00:00", message: "retried" }]);
  });

  it("a malformed answer is retried by the library and the row lands once", async () => {
    bq.faults.inject({ kind: "malformed", times: 1 });
    const [response] = await demoTable(writerToken).insert([{ message: "after garbage" }]);
    expect(response).toEqual({ kind: "bigquery#tableDataInsertAllResponse" });
    expect(bq.calls.get("tabledata.insertAll")).toBe(2);
    expect(storedJson()).toEqual([{ message: "after garbage" }]);
  });

  it("a rateLimitExceeded throttle reaches the caller: the library does not retry BigQuery's 403s", async () => {
    // Its retry hook sees the status only, and 403 is not retryable; the reason is in the body.
    bq.faults.inject({ kind: "throttle", times: 1 });
    const error = await failure(demoTable(writerToken).insert([{ message: "throttled" }]));
    expect(error).toMatchObject({ code: 403, errors: [{ reason: "rateLimitExceeded" }] });
    expect(bq.calls.get("tabledata.insertAll")).toBe(1);
    expect(storedJson()).toEqual([]);
  });
});
