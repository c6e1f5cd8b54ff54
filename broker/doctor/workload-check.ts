import { extractTemplate } from "./attributes.ts";
import { defineCheck, pass, skip, type Workload } from "./check.ts";
import { federatedMember, principalSetMember } from "./gcloud-names.ts";
import { stsNamespace } from "./token-checks.ts";

/*
 * Which workload of the role the JWT speaks for (its function, its request tags) and what the
 * provider's mapping makes of it: the principal set a per-function or per-tag grant names, or, when
 * the mapping tells the role's workloads apart by nothing, the role's own principal.
 */

type Tags = Readonly<Record<string, string>>;

function tagsOf(value: unknown): Tags {
  if (typeof value !== "object" || value === null) return {};
  return Object.fromEntries(Object.entries(value).filter(([, tag]) => typeof tag === "string")) as Tags;
}

function listed(tags: Tags): string {
  return Object.entries(tags)
    .map(([key, value]) => `${key}=${value}`)
    .join(",");
}

/** The mapped attribute whose value is one of `values`, if any. */
function attributeFor(attributes: Tags, values: readonly string[]): [string, string] | undefined {
  return Object.entries(attributes).find(([, value]) => value !== "" && values.includes(value));
}

export const workloadCheck = defineCheck({
  id: "workload",
  needs: ["config", "claims", "subject", "attributes"],
  provides: ["workload"],
  async run({ config, claims, subject, attributes }) {
    const aws = (claims[stsNamespace] ?? {}) as Record<string, unknown>;
    const functionArn =
      typeof aws.lambda_source_function_arn === "string" ? aws.lambda_source_function_arn : "";
    const functionName = extractTemplate(functionArn, ":function:{name}");
    const requestTags = tagsOf(aws.request_tags);
    const principalTags = tagsOf(aws.principal_tags);
    const seen = [
      functionName === "" ? "no function claim" : `function ${functionName}`,
      ...(Object.keys(requestTags).length === 0 ? [] : [`request_tags ${listed(requestTags)}`]),
      ...(Object.keys(principalTags).length === 0 ? [] : [`principal_tags ${listed(principalTags)}`]),
    ].join(", ");
    const role: Workload = {
      describes: `role ${claims.sub}`,
      grantee: federatedMember(config.audience, subject.value),
    };
    if (attributes === undefined) {
      return skip(
        `${seen}; pass --provider FILE or --google-provider to see the principal sets the mapping makes of them`,
        { workload: role },
      );
    }
    const byFunction = functionName === "" ? undefined : attributeFor(attributes, [functionName]);
    const byTag = attributeFor(attributes, Object.values(requestTags));
    const [name, value] = byFunction ?? byTag ?? [];
    if (name === undefined || value === undefined) {
      const why =
        functionName === ""
          ? "no mapped attribute tells it apart from the role's other workloads"
          : "the provider maps no attribute to this function (map attribute.lambda_function, as infra/gcp does)";
      return pass(`${seen}; ${why}: grants go to every workload of the role, ${role.grantee}`, {
        workload: role,
      });
    }
    const workload: Workload = {
      describes: byFunction === undefined ? `request tag ${value}` : `function ${functionName}`,
      grantee: principalSetMember(config.audience, name, value),
    };
    return pass(
      `${seen}; attribute.${name}="${value}": a grant to ${workload.grantee} reaches this ${byFunction === undefined ? "tag" : "function"} only, not the role's other workloads`,
      { workload },
    );
  },
});
