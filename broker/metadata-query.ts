/**
 * Query strings of the metadata protocol, parsed the way the SDKs actually write them. Invalid
 * input becomes a `BrokerError` with a 4xx status whose message says what a good request looks like.
 */
import { BrokerError } from "./errors.ts";
import { type IdTokenFormat, type IdTokenRequest, scopeList } from "./tokens.ts";

/** Splits a request target into its raw path and raw query (both still percent-encoded). */
export function splitTarget(url: string): { path: string; query: string } {
  const mark = url.indexOf("?");
  return mark === -1 ? { path: url, query: "" } : { path: url.slice(0, mark), query: url.slice(mark + 1) };
}

/** `?recursive=true` (any case), as Python's google-auth asks for a service account's details. */
export function isRecursive(query: string): boolean {
  return new URLSearchParams(query).get("recursive")?.toLowerCase() === "true";
}

/**
 * `?scopes=a,b` (repeated `scopes` parameters are merged). `undefined` when absent, meaning the
 * configured default scopes. The SDKs never send an empty list, so an empty entry is an error.
 */
export function parseScopes(query: string): string[] | undefined {
  if (query === "") return undefined;
  const values = new URLSearchParams(query).getAll("scopes");
  if (values.length === 0) return undefined;
  // URLSearchParams keeps a malformed escape (`%zz`) as literal text; no scope holds one.
  const malformed = query
    .split("&")
    .some((piece) => piece.startsWith("scopes=") && malformedEscape.test(piece));
  const scopes = malformed ? undefined : scopeList(values.join(","));
  if (scopes === undefined) {
    throw new BrokerError(
      "INVALID_PARAMETER",
      "scopes must be a comma-separated list of OAuth scopes, e.g. ?scopes=https://www.googleapis.com/auth/cloud-platform",
    );
  }
  return scopes;
}

/** A `%` not followed by two hex digits. */
const malformedEscape = /%(?![0-9a-f]{2})/i;

/** Parameter names the metadata server defines; see `identityParameters` for why this matters. */
const protocolParameters: ReadonlySet<string> = new Set([
  "alt",
  "audience",
  "format",
  "last_etag",
  "licenses",
  "recursive",
  "scopes",
  "timeout_sec",
  "wait_for_change",
]);

/** `identity?audience=<aud>[&format=standard|full][&licenses=TRUE|FALSE]`. */
export function parseIdTokenRequest(query: string): IdTokenRequest {
  const params = identityParameters(query);
  const audience = params.get("audience");
  if (audience === undefined || audience === "") {
    throw new BrokerError(
      "AUDIENCE_MISSING",
      "The identity endpoint needs an audience: add ?audience=<URL or client id the ID token is for>",
    );
  }
  return {
    audience,
    format: parseFormat(params.get("format")),
    includeLicenses: parseLicenses(params.get("licenses")),
  };
}

function parseFormat(value: string | undefined): IdTokenFormat {
  if (value === undefined || value === "" || value === "standard") return "standard";
  if (value === "full") return "full";
  throw new BrokerError(
    "INVALID_PARAMETER",
    'format must be "standard" or "full", e.g. ?audience=…&format=full',
  );
}

function parseLicenses(value: string | undefined): boolean {
  if (value === undefined || value === "") return false;
  const lower = value.toLowerCase();
  if (lower === "true" || lower === "false") return lower === "true";
  throw new BrokerError(
    "INVALID_PARAMETER",
    "licenses must be TRUE or FALSE, e.g. ?audience=…&format=full&licenses=TRUE",
  );
}

/**
 * The identity query's parameters, an unencoded audience cut at its `&`s joined back: after
 * `audience=`, a piece continues it unless it is a protocol parameter not given yet.
 * Why: docs/metadata-server.md#the-identity-query
 */
function identityParameters(query: string): Map<string, string> {
  const params = new Map<string, string>();
  let inAudience = false;
  for (const piece of query === "" ? [] : query.split("&")) {
    const eq = piece.indexOf("=");
    const name = decodeLeniently(eq === -1 ? piece : piece.slice(0, eq));
    const value = eq === -1 ? "" : decodeLeniently(piece.slice(eq + 1));
    if (protocolParameters.has(name) && !params.has(name)) {
      params.set(name, value);
      inAudience = name === "audience";
    } else if (inAudience) {
      params.set("audience", `${params.get("audience")}&${decodeLeniently(piece)}`);
    }
  }
  return params;
}

function decodeLeniently(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
