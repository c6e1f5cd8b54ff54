import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "@cdktf/hcl2json";

/**
 * A test-only reader of the Terraform in infra/gcp: `@cdktf/hcl2json` (HashiCorp's HCL parser
 * compiled to WebAssembly) parses the files offline; this module resolves the few interpolations
 * whose results must agree with the CDK side, as Terraform would once the resources exist. Anything
 * else throws, so a change to those expressions fails the test instead of passing unchecked.
 */

type Block = Record<string, unknown>;
export interface TerraformModule {
  readonly variable: Record<string, [Block]>;
  readonly locals: Block[];
  readonly resource: Record<string, Record<string, [Block]>>;
  readonly output: Record<string, [Block]>;
  readonly data: Record<string, Record<string, [Block]>>;
  readonly module: Record<string, [Block]>;
}

const gcpDirectory = path.resolve(import.meta.dirname, "..", "gcp");

/** Every `.tf` file of a module (infra/gcp unless told), merged as Terraform merges a module's files. */
export async function loadModule(directory = gcpDirectory): Promise<TerraformModule> {
  const merged: Record<string, Record<string, unknown>> = {};
  const locals: Block[] = [];
  for (const file of readdirSync(directory).filter((name) => name.endsWith(".tf"))) {
    const parsed = (await parse(file, readFileSync(path.join(directory, file), "utf8"))) as Record<
      string,
      unknown
    >;
    for (const [kind, blocks] of Object.entries(parsed)) {
      if (kind === "locals") locals.push(...(blocks as Block[]));
      else merged[kind] = deepMerge(merged[kind] ?? {}, blocks as Record<string, unknown>);
    }
  }
  return {
    variable: (merged.variable ?? {}) as TerraformModule["variable"],
    locals,
    resource: (merged.resource ?? {}) as TerraformModule["resource"],
    output: (merged.output ?? {}) as TerraformModule["output"],
    data: (merged.data ?? {}) as TerraformModule["data"],
    module: (merged.module ?? {}) as TerraformModule["module"],
  };
}

/** The variables set in a `.tfvars` file of infra/gcp. */
export async function loadTfvars(file: string): Promise<Record<string, unknown>> {
  return (await parse(file, readFileSync(path.join(gcpDirectory, file), "utf8"))) as Record<string, unknown>;
}

function deepMerge(into: Record<string, unknown>, from: Record<string, unknown>): Record<string, unknown> {
  const result = { ...into };
  for (const [key, value] of Object.entries(from)) {
    const existing = result[key];
    result[key] =
      existing && typeof existing === "object" && !Array.isArray(existing)
        ? deepMerge(existing as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return result;
}

/** What only Google knows until apply: the project number `data.google_project.this.number` reads. */
export interface Evaluation {
  readonly variables: Record<string, unknown>;
  readonly projectNumber: string;
}

export class TerraformEvaluator {
  readonly #module: TerraformModule;
  readonly #evaluation: Evaluation;

  constructor(module: TerraformModule, evaluation: Evaluation) {
    this.#module = module;
    this.#evaluation = evaluation;
  }

  /** A local value, resolved. */
  local(name: string): unknown {
    const block = this.#module.locals.find((locals) => name in locals);
    if (!block) throw new Error(`no local ${name}`);
    return this.resolve(block[name]);
  }

  /** A resource's attribute as written in HCL, resolved. */
  attribute(type: string, name: string, attribute: string): unknown {
    const block = this.#module.resource[type]?.[name]?.[0];
    if (!block || !(attribute in block)) throw new Error(`no ${type}.${name}.${attribute}`);
    return this.resolve(block[attribute]);
  }

  /** A string, list or object with `${...}` interpolations, as Terraform would render it. */
  resolve(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((item) => this.resolve(item));
    if (value && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, this.resolve(item)]));
    }
    if (typeof value !== "string") return value;
    const whole = /^\$\{([^{}]+)\}$/.exec(value);
    if (whole?.[1]) return this.#expression(whole[1].trim());
    return value.replace(/\$\{([^{}]+)\}/g, (_, expression: string) => {
      const result = this.#expression(expression.trim());
      if (typeof result !== "string") throw new Error(`\${${expression}} is not a string`);
      return result;
    });
  }

  #expression(expression: string): unknown {
    const conditional = /^(\S+) \? (\S+) : (\S+)$/.exec(expression);
    if (conditional) {
      const [, condition = "", whenTrue = "", whenFalse = ""] = conditional;
      return this.#expression(this.#expression(condition) === true ? whenTrue : whenFalse);
    }
    const comparison = /^(\S+) (==|!=) ""$/.exec(expression);
    if (comparison) {
      const [, operand = "", operator] = comparison;
      return (this.#expression(operand) === "") === (operator === "==");
    }
    if (expression === '""') return "";
    const tostring = /^tostring\((.+)\)$/.exec(expression);
    if (tostring?.[1]) return String(this.#expression(tostring[1]));
    const jsonencode = /^jsonencode\((.+)\)$/.exec(expression);
    if (jsonencode?.[1]) return JSON.stringify(this.#expression(jsonencode[1]));
    const variable = /^var\.(\w+)$/.exec(expression);
    if (variable?.[1]) return this.#variable(variable[1]);
    const local = /^local\.(\w+)$/.exec(expression);
    if (local?.[1]) return this.local(local[1]);
    if (expression === "data.google_project.this.number") return this.#evaluation.projectNumber;
    const reference = /^(google_\w+)\.(\w+)\.(\w+)$/.exec(expression);
    if (reference) {
      const [, type = "", name = "", attribute = ""] = reference;
      return attribute === "name" ? this.#resourceName(type, name) : this.attribute(type, name, attribute);
    }
    throw new Error(`the test cannot evaluate \${${expression}}`);
  }

  #variable(name: string): unknown {
    if (name in this.#evaluation.variables) return this.#evaluation.variables[name];
    const declaration = this.#module.variable[name]?.[0];
    if (!declaration) throw new Error(`no variable ${name}`);
    if (!("default" in declaration)) throw new Error(`variable ${name} has no default and was not given`);
    return declaration.default;
  }

  /** `name` as the Google provider computes it for the pool and provider, else the `name` argument. */
  #resourceName(type: string, name: string): unknown {
    if (type === "google_iam_workload_identity_pool") {
      const pool = this.attribute(type, name, "workload_identity_pool_id");
      return `projects/${this.#evaluation.projectNumber}/locations/global/workloadIdentityPools/${pool}`;
    }
    if (type === "google_iam_workload_identity_pool_provider") {
      const pool = this.attribute(type, name, "workload_identity_pool_id");
      const provider = this.attribute(type, name, "workload_identity_pool_provider_id");
      return `projects/${this.#evaluation.projectNumber}/locations/global/workloadIdentityPools/${pool}/providers/${provider}`;
    }
    return this.attribute(type, name, "name");
  }
}
