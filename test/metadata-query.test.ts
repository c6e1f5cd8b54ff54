import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseIdTokenRequest, parseScopes, splitTarget } from "../broker/metadata-query.ts";

/** The query a URL ends up with once a client library has built it (WHATWG URL normalisation). */
function sentQuery(pathAndQuery: string): string {
  return splitTarget(new URL(pathAndQuery, "http://127.0.0.1:8181").search).query;
}

/** Characters a query key or value may hold unencoded, `&`, `#` and `%` aside. */
const queryText = fc.stringMatching(/^[A-Za-z0-9._~:/?@!$'()*+,;=-]{0,10}$/);
const protocolNames = new Set([
  "alt",
  "last_etag",
  "licenses",
  "recursive",
  "scopes",
  "timeout_sec",
  "wait_for_change",
]);

/**
 * Audiences as URLs with queries of several parameters. Left out: `%` (an unencoded `%41` cannot
 * be told from an encoded `A`) and keys named like a metadata parameter not sent yet (`licenses`,
 * `alt`…), which an unencoded audience cannot be told apart from; both are documented limits.
 */
const audiences = fc
  .tuple(
    fc.webUrl().filter((url) => !url.includes("%")),
    fc.array(fc.tuple(queryText, queryText), { minLength: 1, maxLength: 4 }),
  )
  .filter(([, pairs]) => pairs.every(([key]) => !protocolNames.has(key.split("=")[0] ?? "")))
  .map(([url, pairs]) => `${url}?${pairs.map(([key, value]) => `${key}=${value}`).join("&")}`);

describe("parseIdTokenRequest", () => {
  it("reads Node's unencoded audience (google-auth-library Compute.fetchIdToken) whole", () => {
    fc.assert(
      fc.property(audiences, (audience) => {
        const query = sentQuery(`/identity?format=full&audience=${audience}`);
        expect(parseIdTokenRequest(query)).toEqual({ audience, format: "full", includeLicenses: false });
      }),
    );
  });

  it("reads Python's encoded audience (urlencode of audience, format, licenses) whole", () => {
    fc.assert(
      fc.property(audiences, (audience) => {
        const query = new URLSearchParams({ audience, format: "full", licenses: "TRUE" }).toString();
        expect(parseIdTokenRequest(query)).toEqual({ audience, format: "full", includeLicenses: true });
      }),
    );
  });

  it("keeps a plus sign, which Node sends literally", () => {
    expect(parseIdTokenRequest("audience=https://x.example/a+b").audience).toBe("https://x.example/a+b");
  });

  it("leaves an invalid escape as written rather than failing", () => {
    expect(parseIdTokenRequest("audience=https://x.example/%zz").audience).toBe("https://x.example/%zz");
  });
});

describe("parseScopes", () => {
  it("is undefined without a scopes parameter, and merges repeated ones in order", () => {
    expect(parseScopes("recursive=true")).toBeUndefined();
    expect(parseScopes("scopes=a,b&scopes=c")).toEqual(["a", "b", "c"]);
  });

  it("refuses a malformed escape (400) and decodes a well-formed one", () => {
    for (const query of ["scopes=%zz", "scopes=a,b%2", "scopes=a&scopes=%"]) {
      expect(() => parseScopes(query), query).toThrow(
        expect.objectContaining({ code: "INVALID_PARAMETER", httpStatus: 400 }),
      );
    }
    expect(parseScopes("scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fbigquery%2Ca")).toEqual([
      "https://www.googleapis.com/auth/bigquery",
      "a",
    ]);
  });
});
