import type { CelInput } from "@bufbuild/cel";
import type { JWTPayload } from "jose";
import { evaluateCel } from "./google-cel.ts";

/** What Google STS makes of a verified assertion: the mapped attributes, or why it refused. */
export type AttributeOutcome =
  | {
      readonly ok: true;
      readonly subject: string;
      /** `attribute.<name>` values by name (the `principalSet://…/attribute.<name>/<value>` they join). */
      readonly attributes: Readonly<Record<string, string>>;
    }
  | {
      readonly ok: false;
      readonly error: "invalid_grant" | "invalid_request" | "unauthorized_client";
      readonly description: string;
    };

/** Google's limits on what a mapping yields: `google.subject` in bytes, all mapped attributes together. */
export const MAX_SUBJECT_BYTES = 127;
export const MAX_MAPPED_ATTRIBUTES_BYTES = 8192;

function refused(error: "invalid_grant" | "invalid_request" | "unauthorized_client", description: string) {
  return { ok: false, error, description } as const;
}

/**
 * A provider's mapping, limits and condition, in Google STS's order. The subject texts are Google's
 * as its users report them; its texts for a mapping in error and for the 8 KB total are not on record.
 */
export function mapAttributes(
  mapping: Readonly<Record<string, string>>,
  condition: string | undefined,
  claims: JWTPayload,
): AttributeOutcome {
  // JSON objects are CEL maps as they are, so `assertion['https://sts.amazonaws.com/']` indexes.
  const assertion = claims as CelInput;
  const google: Record<string, CelInput> = {};
  const attribute: Record<string, string> = {};
  for (const [target, expression] of Object.entries(mapping)) {
    const outcome = evaluateCel(expression, { assertion });
    if (!outcome.ok) {
      return refused(
        "invalid_grant",
        `The attribute mapping for ${target} could not be evaluated: ${outcome.error}.`,
      );
    }
    const [namespace, key = ""] = target.split(".", 2);
    if (namespace === "google") {
      google[key] = outcome.value as CelInput;
      continue;
    }
    if (typeof outcome.value !== "string")
      return refused("unauthorized_client", `The mapped attribute '${target}' must be of type STRING.`);
    attribute[key] = outcome.value;
  }
  const subject = google.subject;
  if (subject === undefined || subject === "")
    return refused("invalid_grant", "The mapped attribute google.subject is missing.");
  if (typeof subject !== "string")
    return refused("unauthorized_client", "The mapped attribute 'google.subject' must be of type STRING.");
  if (Buffer.byteLength(subject) > MAX_SUBJECT_BYTES) {
    return refused(
      "invalid_request",
      `The size of mapped attribute google.subject exceeds the ${MAX_SUBJECT_BYTES} bytes limit. Either modify your attribute mapping or the incoming assertion to produce a mapped attribute that is less than ${MAX_SUBJECT_BYTES} bytes.`,
    );
  }
  const size = [subject, ...Object.values(attribute)].reduce(
    (sum, value) => sum + Buffer.byteLength(value),
    0,
  );
  if (size > MAX_MAPPED_ATTRIBUTES_BYTES) {
    return refused(
      "invalid_request",
      "The size of mapped attributes exceeds the 8KB limit. Either modify your attribute mapping or the incoming assertion to produce mapped attributes that are less than 8KB.",
    );
  }
  if (condition !== undefined && condition !== "") {
    const admitted = evaluateCel(condition, { assertion, google, attribute });
    if (!admitted.ok || admitted.value !== true)
      return refused("unauthorized_client", "The given credential is rejected by the attribute condition.");
  }
  return { ok: true, subject, attributes: attribute };
}
