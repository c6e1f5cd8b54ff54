import { BrokerError } from "./errors.ts";
import { canonicalHost } from "./request-host.ts";
import { scopeList } from "./tokens.ts";

/*
 * The value parsers of the configuration table (config-variables.ts). Each turns a variable's text
 * into its value or throws the one line a user needs: the variable, what is wrong, a good example.
 */

/** Parses the text of variable `name`; `example` is a good value, named in the error line. */
export type Parser<T> = (name: string, raw: string, example: string) => T;

export function invalid(name: string, problem: string, example: string): BrokerError {
  return new BrokerError("CONFIG_INVALID", `${name} ${problem}; for example ${name}=${example}`);
}

/** A value as an error line shows it: in quotes, escaped, cut after 64 characters. */
export function quoted(raw: string): string {
  return JSON.stringify(raw.length > 64 ? `${raw.slice(0, 64)}…` : raw);
}

export function integer(min: number, max: number): Parser<number> {
  return (name, raw, example) => {
    const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw invalid(name, `must be an integer from ${min} to ${max}, got "${raw}"`, example);
    }
    return value;
  };
}

/** One of `choices`, spelled exactly. */
export function oneOf<T extends string>(choices: readonly T[]): Parser<T> {
  const listed = choices.length === 2 ? `${choices[0]} or ${choices[1]}` : `one of ${choices.join(", ")}`;
  return (name, raw, example) => {
    if (!choices.includes(raw as T)) throw invalid(name, `must be ${listed}, got "${raw}"`, example);
    return raw as T;
  };
}

const trueOrFalse = oneOf(["true", "false"]);
export const boolean: Parser<boolean> = (name, raw, example) => trueOrFalse(name, raw, example) === "true";

/** Text that matches `pattern`; `what` names the kind of value ("an AWS region"). */
export function matching(pattern: RegExp, what: string): Parser<string> {
  return (name, raw, example) => {
    if (!pattern.test(raw)) throw invalid(name, `is not ${what}, got "${raw}"`, example);
    return raw;
  };
}

/**
 * Upstream URLs must be https; plain http is accepted only on loopback, where a local emulator
 * or a test cloud runs and nothing crosses a network. Trailing slashes are dropped.
 */
export const parseUrl: Parser<string> = (name, raw, example) => {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(name, `is not a URL, got "${raw}"`, example);
  }
  const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw invalid(name, `must be an https URL (http only on loopback), got "${raw}"`, example);
  }
  return raw.replace(/\/+$/, "");
};

export const host: Parser<string> = (name, raw, example) => {
  if (!/^[A-Za-z0-9.:-]+$/.test(raw)) {
    throw invalid(name, `is not an IP address or host name, got "${raw}"`, example);
  }
  return raw;
};

/** `host[:port]` values, IPv6 in brackets; kept as written (the metadata listener canonicalises). */
export const hostList: Parser<readonly string[]> = (name, raw, example) => {
  const hosts = raw.split(",").map((entry) => entry.trim());
  const bad = hosts.find((entry) => canonicalHost(entry) === undefined);
  if (bad !== undefined) {
    throw invalid(name, `must be comma-separated host names or addresses, got "${bad}"`, example);
  }
  return Object.freeze(hosts);
};

/** Splits, trims, drops duplicates; order is kept (it is what SDKs see in `scopes`). */
export const scopes: Parser<readonly string[]> = (name, raw, example) => {
  const list = scopeList(raw);
  if (list === undefined) throw invalid(name, `must be comma-separated OAuth scopes, got "${raw}"`, example);
  return Object.freeze([...new Set(list)]);
};

/**
 * CloudWatch's namespace rules (1 to 255 printable ASCII characters, not starting with ":" or the
 * reserved `AWS/`): CloudWatch drops the metrics of a document it refuses, with nothing in the
 * function's log, so a bad namespace stops start-up instead.
 */
export const emfNamespace: Parser<string> = (name, raw, example) => {
  const problem =
    raw.length > 255
      ? `is ${raw.length} characters long; CloudWatch allows 255`
      : !/^[\x20-\x7e]+$/.test(raw)
        ? "may hold only printable ASCII characters (CloudWatch refuses others)"
        : raw.startsWith(":")
          ? 'must not start with ":" (CloudWatch refuses it)'
          : raw.startsWith("AWS/")
            ? "must not start with AWS/ (reserved for AWS services)"
            : undefined;
  if (problem === undefined) return raw;
  throw invalid(name, `${problem}, got ${quoted(raw)}`, example);
};

/** The `Tags` of `GetWebIdentityToken` by key, in the order given (`BROKER_TOKEN_TAGS`). */
export type TokenTags = Readonly<Record<string, string>>;

/** STS's limits on `GetWebIdentityToken` `Tags` (its API model): count, lengths, characters. */
export const stsTagLimits = {
  maxTags: 50,
  maxKeyLength: 128,
  maxValueLength: 256,
  /** Letters, separators, digits and `_.:/=+-@`; `=` cannot appear in a key of `key=value` text. */
  key: /^[\p{L}\p{Z}\p{N}_.:/+\-@]+$/u,
  value: /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u,
} as const;

/** What is wrong with one `key=value` entry, if anything. */
function tagProblem(entry: string, key: string, value: string): string | undefined {
  const { maxKeyLength, maxValueLength } = stsTagLimits;
  if (key === "") return `has an entry without a key, "${entry}"`;
  if (key.length > maxKeyLength) return `has a key of ${key.length} characters; STS allows ${maxKeyLength}`;
  if (value.length > maxValueLength)
    return `has a value of ${value.length} characters for ${key}; STS allows ${maxValueLength}`;
  if (!stsTagLimits.key.test(key) || !stsTagLimits.value.test(value))
    return `may hold only letters, digits, spaces and _.:/=+-@ in keys and values (STS refuses others), got "${entry}"`;
  if (key.trim() !== key || value.trim() !== value)
    return `has spaces around a key or value in "${entry}"; write key=value without them`;
  return undefined;
}

/**
 * `key=value,…` within STS's limits (checked here, so a bad tag stops start-up instead of failing
 * every chain); keys are unique whatever their case, as STS requires.
 */
export const tokenTags: Parser<TokenTags> = (name, raw, example) => {
  const tags: Record<string, string> = {};
  const seen = new Set<string>();
  for (const entry of raw.split(",").map((part) => part.trim())) {
    const separator = entry.indexOf("=");
    if (separator < 0)
      throw invalid(name, `must be comma-separated key=value pairs, got "${entry}"`, example);
    const key = entry.slice(0, separator);
    const value = entry.slice(separator + 1);
    const problem = tagProblem(entry, key, value);
    if (problem !== undefined) throw invalid(name, problem, example);
    if (seen.has(key.toLowerCase()))
      throw invalid(name, `names the key ${key} twice (STS compares tag keys ignoring case)`, example);
    seen.add(key.toLowerCase());
    tags[key] = value;
  }
  if (seen.size > stsTagLimits.maxTags)
    throw invalid(name, `has ${seen.size} tags; STS allows ${stsTagLimits.maxTags}`, example);
  return Object.freeze(tags);
};
