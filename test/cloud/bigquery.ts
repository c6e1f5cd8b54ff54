import type { Request } from "express";
import {
  callerOf,
  GoogleApiError,
  type GoogleApiFake,
  type GoogleError,
  googleApi,
  hasAnyScope,
  insufficientScopes,
  parseJsonBody,
  pathParam,
} from "./google-api.ts";
import type { IssuedAccessToken, Ledger } from "./ledger.ts";
import { iamMembers, type World } from "./world.ts";

/**
 * Fake of BigQuery's streaming insert (`tabledata.insertAll`), as `@google-cloud/bigquery`'s
 * `table.insert(rows)` sends it (no request precedes the POST). One table exists, the demo's, with
 * a fixed schema; rows are checked against it as BigQuery does (unknown fields, unparsable
 * timestamps), deduplicated by `insertId`, and kept for inspection. Only the world's data writers
 * (any of a caller's members: principal, principal set, service account) may insert, and only into
 * `world.dataset` of the world's project.
 */
export type BigQueryOperation = "tabledata.insertAll" | "tables.testIamPermissions" | "unrouted";

/** A row as stored: the client's `insertId` (if any) and the `json` object it sent. */
export interface StoredRow {
  readonly insertId: string | undefined;
  readonly json: Readonly<Record<string, unknown>>;
}

/** `reset()` keeps the stored rows. */
export interface BigQueryFake extends GoogleApiFake<BigQueryOperation> {
  /** The rows stored in a table, oldest first (empty for a table that does not exist). */
  rows(dataset: string, table: string): readonly StoredRow[];
  /** Removes an IAM member's grant on the demo dataset (until `reset()`). */
  revoke(member: string): void;
}

type FieldType = "TIMESTAMP" | "STRING";

/** The schema of the demo table (`world.dataset`.`world.table`). */
const demoTableSchema: readonly { name: string; type: FieldType }[] = [
  { name: "timestamp", type: "TIMESTAMP" },
  { name: "message", type: "STRING" },
];

const insertScopes = [
  "https://www.googleapis.com/auth/bigquery",
  "https://www.googleapis.com/auth/bigquery.insertdata",
  "https://www.googleapis.com/auth/cloud-platform",
];

const seeDevConsole =
  "Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

/** One entry of `insertErrors[].errors`, as BigQuery fills it. */
interface RowError {
  readonly reason: string;
  readonly location: string;
  readonly debugInfo: string;
  readonly message: string;
}

interface Table {
  readonly schema: ReadonlyMap<string, FieldType>;
  readonly rows: StoredRow[];
  readonly insertIds: Set<string>;
}

export async function startBigQuery({
  world,
  ledger,
}: {
  world: World;
  ledger: Ledger;
}): Promise<BigQueryFake> {
  const tables = new Map<string, Table>([
    [
      `${world.dataset}.${world.table}`,
      {
        schema: new Map(demoTableSchema.map((field) => [field.name, field.type])),
        rows: [],
        insertIds: new Set(),
      },
    ],
  ]);
  const api = googleApi<BigQueryOperation>({
    unrouted: "unrouted",
    withStatus: true,
    throttled: {
      code: 403,
      message:
        "Exceeded rate limits: too many api requests per user per method for this user_method. For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas",
      reason: "rateLimitExceeded",
    },
  });

  const revoked = new Set<string>();
  // A downscoped token holds Cloud Storage permissions only (its boundary names nothing else), so
  // BigQuery denies it whatever its principal may do.
  const grantedOn = (token: IssuedAccessToken, project: string, dataset: string) =>
    token.accessBoundary === undefined &&
    project === world.googleProjectId &&
    dataset === world.dataset &&
    iamMembers(world, token.principal).some(
      (member) => world.dataWriters.includes(member) && !revoked.has(member),
    );

  /** Authenticates, checks scopes, then the demo's grant, then that the table exists. */
  const authorizeInsert = (req: Request, project: string, dataset: string, tableId: string): Table => {
    const caller = callerOf(req, ledger);
    if (caller.kind !== "token") throw new GoogleApiError(unauthenticated(caller.kind === "anonymous"));
    if (!hasAnyScope(caller.token, insertScopes)) throw new GoogleApiError(insufficientScopes);
    const name = `${project}:${dataset}.${tableId}`;
    if (!grantedOn(caller.token, project, dataset)) {
      throw new GoogleApiError({
        code: 403,
        message: `Access Denied: Table ${name}: Permission bigquery.tables.updateData denied on table ${name} (or it may not exist).`,
        reason: "accessDenied",
      });
    }
    const table = tables.get(`${dataset}.${tableId}`);
    if (table === undefined) {
      throw new GoogleApiError({ code: 404, message: `Not found: Table ${name}`, reason: "notFound" });
    }
    return table;
  };

  api.route(
    "post",
    "/bigquery/v2/projects/:project/datasets/:dataset/tables/:table/insertAll",
    "tabledata.insertAll",
    (req, res) => {
      const table = authorizeInsert(
        req,
        pathParam(req, "project"),
        pathParam(req, "dataset"),
        pathParam(req, "table"),
      );
      const request = insertAllRequest(parseJsonBody(req));
      const checked = request.rows.map((row) =>
        rowErrors(table.schema, row.json, request.ignoreUnknownValues),
      );
      const invalid = checked.some((errors) => errors.length > 0);
      // Without skipInvalidRows one bad row stops the whole request; the others are reported "stopped".
      const insertErrors = checked.flatMap((errors, index) => {
        if (errors.length > 0) return [{ index, errors }];
        if (invalid && !request.skipInvalidRows) {
          return [{ index, errors: [{ reason: "stopped", location: "", debugInfo: "", message: "" }] }];
        }
        return [];
      });
      request.rows.forEach((row, index) => {
        if (checked[index]?.length !== 0 || (invalid && !request.skipInvalidRows)) return;
        if (row.insertId !== undefined && table.insertIds.has(row.insertId)) return;
        if (row.insertId !== undefined) table.insertIds.add(row.insertId);
        // Values of unknown fields (accepted under ignoreUnknownValues) are dropped, as BigQuery does.
        const json = Object.fromEntries(
          Object.entries(row.json).filter(([field]) => table.schema.has(field)),
        );
        table.rows.push({ insertId: row.insertId, json });
      });
      res.json({
        kind: "bigquery#tableDataInsertAllResponse",
        ...(insertErrors.length > 0 ? { insertErrors } : {}),
      });
    },
  );

  // `tables/{table}:testIamPermissions`: the custom verb shares the table's path segment.
  api.route(
    "post",
    "/bigquery/v2/projects/:project/datasets/:dataset/tables/:tableVerb",
    "tables.testIamPermissions",
    (req, res) => {
      const [tableId, verb] = pathParam(req, "tableVerb").split(":");
      if (verb !== "testIamPermissions") {
        throw new GoogleApiError({ code: 404, message: "Not Found", reason: "notFound" });
      }
      const caller = callerOf(req, ledger);
      if (caller.kind !== "token") throw new GoogleApiError(unauthenticated(caller.kind === "anonymous"));
      const project = pathParam(req, "project");
      const dataset = pathParam(req, "dataset");
      if (!tables.has(`${dataset}.${tableId}`) || project !== world.googleProjectId) {
        throw new GoogleApiError({
          code: 404,
          message: `Not found: Table ${project}:${dataset}.${tableId}`,
          reason: "notFound",
        });
      }
      const body = parseJsonBody(req) as { permissions?: unknown };
      const asked = Array.isArray(body.permissions) ? body.permissions.map(String) : [];
      const held: readonly string[] = grantedOn(caller.token, project, dataset)
        ? ["bigquery.tables.updateData", "bigquery.tables.getData", "bigquery.tables.get"]
        : [];
      const permissions = asked.filter((permission) => held.includes(permission));
      res.json(permissions.length > 0 ? { permissions } : {});
    },
  );

  const fake = await api.listen();
  return {
    ...fake,
    reset: () => {
      fake.reset();
      revoked.clear();
    },
    revoke: (member) => revoked.add(member),
    rows: (dataset, table) => [...(tables.get(`${dataset}.${table}`)?.rows ?? [])],
  };
}

function unauthenticated(anonymous: boolean): GoogleError {
  return anonymous
    ? {
        code: 401,
        message: `Request is missing required authentication credential. ${seeDevConsole}`,
        detail: "Login Required.",
        reason: "required",
        header: "Authorization",
      }
    : {
        code: 401,
        message: `Request had invalid authentication credentials. ${seeDevConsole}`,
        detail: "Invalid Credentials",
        reason: "authError",
        header: "Authorization",
      };
}

interface InsertAllRequest {
  readonly rows: readonly StoredRow[];
  readonly skipInvalidRows: boolean;
  readonly ignoreUnknownValues: boolean;
}

function insertAllRequest(body: unknown): InsertAllRequest {
  const fields = isObject(body) ? body : {};
  const rows = Array.isArray(fields.rows) ? fields.rows : [];
  if (rows.length === 0) {
    throw new GoogleApiError({ code: 400, message: "No rows present in the request.", reason: "invalid" });
  }
  return {
    rows: rows.map((row: unknown) => {
      const entry = isObject(row) ? row : {};
      return {
        insertId: typeof entry.insertId === "string" ? entry.insertId : undefined,
        json: isObject(entry.json) ? entry.json : {},
      };
    }),
    skipInvalidRows: fields.skipInvalidRows === true,
    ignoreUnknownValues: fields.ignoreUnknownValues === true,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * What BigQuery's streaming timestamp parser takes: seconds since the epoch as a number, or a
 * civil date-time with `-` or `/`, `T` or space, optional fraction and zone.
 */
const timestampPattern =
  /^\d{4}[-/]\d{1,2}[-/]\d{1,2}[T ]\d{1,2}:\d{2}(:\d{2}(\.\d{1,12})?)?\s*(Z|UTC|[+-]\d{2}(:?\d{2})?)?$/i;

function rowErrors(
  schema: ReadonlyMap<string, FieldType>,
  json: Record<string, unknown>,
  ignoreUnknown: boolean,
) {
  const errors: RowError[] = [];
  for (const [field, value] of Object.entries(json)) {
    const type = schema.get(field);
    if (type === undefined) {
      if (!ignoreUnknown) errors.push(invalid(field, `no such field: ${field}.`));
    } else if (type === "TIMESTAMP" && value !== null && !validTimestamp(value)) {
      errors.push(
        invalid(
          field,
          `Could not parse '${String(value)}' as a timestamp. Required format is YYYY-MM-DD HH:MM[:SS[.SSSSSS]] or YYYY/MM/DD HH:MM[:SS[.SSSSSS]]`,
        ),
      );
    }
  }
  return errors;
}

function validTimestamp(value: unknown): boolean {
  return typeof value === "number"
    ? Number.isFinite(value)
    : typeof value === "string" && timestampPattern.test(value);
}

function invalid(location: string, message: string): RowError {
  return { reason: "invalid", location, debugInfo: "", message };
}
