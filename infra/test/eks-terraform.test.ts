// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are Terraform interpolations, compared verbatim
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type Config, loadConfig } from "../../broker/config.ts";
import { brokerEnvironment, readManifests, serviceAccount } from "./demo-app-manifest.ts";
import { iamStatement, type PolicyDocumentStatement } from "./policy-document.ts";
import { loadModule, TerraformEvaluator, type TerraformModule } from "./terraform.ts";
import { expectedWebIdentityTokenStatement } from "./web-identity-statement.ts";

/*
 * infra/terraform/aws/examples/eks gives the pod of infra/kubernetes/demo-app.yaml its AWS role.
 * Read offline as Terraform would, and held to what the other side presents: the service account
 * the manifest names (IRSA's token subject, Pod Identity's session tags) and what its broker requests.
 */

const terraformDirectory = path.resolve(import.meta.dirname, "..", "terraform", "aws");

/** What AWS answers at plan time for the cluster, and the issuer the example trims from its URL. */
const cluster = {
  name: "demo",
  arn: "arn:aws:eks:eu-west-1:123456789012:cluster/demo",
  issuer: "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
  oidcProviderArn:
    "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
};
const planned: Record<string, string> = {
  "data.aws_eks_cluster.this.arn": cluster.arn,
  "data.aws_iam_openid_connect_provider.cluster[0].arn": cluster.oidcProviderArn,
  "local.oidc_issuer": cluster.issuer,
};

let example: TerraformModule;
let module: TerraformModule;
/** The manifest's service account, and the configuration its broker starts with. */
let account: { name: string; namespace: string; roleArn: string };
let broker: Config;

beforeAll(async () => {
  example = await loadModule(path.join(terraformDirectory, "examples", "eks"));
  module = await loadModule(terraformDirectory);
  const manifests = readManifests();
  const { name = "", namespace = "", annotations = {} } = serviceAccount(manifests).metadata ?? {};
  account = { name, namespace, roleArn: annotations["eks.amazonaws.com/role-arn"] ?? "" };
  broker = loadConfig(brokerEnvironment(manifests));
});

/** The example with its defaults for the cluster above. */
function exampleEvaluator(): TerraformEvaluator {
  return new TerraformEvaluator(example, { variables: { cluster_name: cluster.name }, projectNumber: "" });
}

/** HCL with the data sources' attributes (and the trimmed issuer) as AWS answers them at plan time. */
function withPlanned(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withPlanned);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, withPlanned(item)]));
  }
  if (typeof value !== "string") return value;
  return value.replace(/\$\{([^{}]+)\}/g, (whole, expression: string) => planned[expression] ?? whole);
}

function trustStatement(document: "irsa_trust" | "pod_identity_trust"): Record<string, unknown> {
  const [block] = example.data.aws_iam_policy_document?.[document] ?? [];
  const [statement, ...more] = exampleEvaluator().resolve(
    withPlanned(block?.statement),
  ) as PolicyDocumentStatement[];
  if (!statement || more.length > 0) throw new Error(`${document} must hold one statement`);
  return iamStatement(statement);
}

function exampleLocals(): Record<string, string> {
  return Object.assign({}, ...example.locals);
}

function only<T>(blocks: Record<string, [T]> | undefined, name: string): T {
  const found = blocks?.[name]?.[0];
  if (!found) throw new Error(`no block ${name}`);
  return found;
}

describe("infra/terraform/aws/examples/eks", () => {
  it("names the manifest's service account, and the role its IRSA annotation names", () => {
    const defaults = (name: string) => only(example.variable, name).default;
    expect({ namespace: defaults("namespace"), service_account: defaults("service_account") }).toEqual({
      namespace: account.namespace,
      service_account: account.name,
    });
    expect(account.roleArn).toBe(`arn:aws:iam::<ACCOUNT>:role/${defaults("role_name")}`);
  });

  it("with IRSA, trusts the cluster's OIDC provider for that service account's token only", () => {
    expect(trustStatement("irsa_trust")).toEqual({
      Sid: "ServiceAccountOfThisCluster",
      Effect: "Allow",
      Action: "sts:AssumeRoleWithWebIdentity",
      Principal: { Federated: cluster.oidcProviderArn },
      Condition: {
        StringEquals: {
          // The token the webhook projects: the cluster's service account subject, STS's audience.
          [`${cluster.issuer}:sub`]: `system:serviceaccount:${account.namespace}:${account.name}`,
          [`${cluster.issuer}:aud`]: "sts.amazonaws.com",
        },
      },
    });
    // The keys are named after the issuer without its scheme; the provider is the cluster's own.
    expect(exampleLocals().oidc_issuer).toBe(
      '${trimprefix(data.aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://")}',
    );
    expect(only(example.data.aws_iam_openid_connect_provider, "cluster").url).toBe(
      "${data.aws_eks_cluster.this.identity[0].oidc[0].issuer}",
    );
  });

  it("with EKS Pod Identity, trusts the EKS service for that service account of that cluster, and associates them", () => {
    expect(trustStatement("pod_identity_trust")).toEqual({
      Sid: "ServiceAccountOfThisCluster",
      Effect: "Allow",
      Action: ["sts:AssumeRole", "sts:TagSession"],
      Principal: { Service: "pods.eks.amazonaws.com" },
      Condition: {
        // The session tags EKS Pod Identity sets from the pod.
        StringEquals: {
          "aws:RequestTag/eks-cluster-arn": cluster.arn,
          "aws:RequestTag/kubernetes-namespace": account.namespace,
          "aws:RequestTag/kubernetes-service-account": account.name,
        },
      },
    });
    const { count, role_arn, depends_on, ...association } = only(
      example.resource.aws_eks_pod_identity_association,
      "broker",
    );
    expect(exampleEvaluator().resolve(association)).toEqual({
      cluster_name: cluster.name,
      namespace: account.namespace,
      service_account: account.name,
    });
    expect({ count, role_arn, depends_on }).toEqual({
      count: "${local.irsa ? 0 : 1}",
      role_arn: "${aws_iam_role.broker.arn}",
      // The pod must not start before its role may mint the JWT.
      depends_on: ["${module.token_broker}"],
    });
  });

  it("builds one role whose trust is the chosen variant's, and the association only for Pod Identity", () => {
    expect(exampleLocals().irsa).toBe('${var.credentials == "irsa"}');
    const [validation] = (only(example.variable, "credentials").validation ?? []) as [{ condition: string }];
    expect(validation.condition).toBe('${contains(["irsa", "pod-identity"], var.credentials)}');
    expect(only(example.resource.aws_iam_role, "broker").assume_role_policy).toBe(
      "${local.irsa ? data.aws_iam_policy_document.irsa_trust[0].json : data.aws_iam_policy_document.pod_identity_trust[0].json}",
    );
    expect(only(example.data.aws_iam_policy_document, "irsa_trust").count).toBe("${local.irsa ? 1 : 0}");
    expect(only(example.data.aws_iam_openid_connect_provider, "cluster").count).toBe("${local.irsa ? 1 : 0}");
    expect(only(example.data.aws_iam_policy_document, "pod_identity_trust").count).toBe(
      "${local.irsa ? 0 : 1}",
    );
  });

  it("grants the module's audience-pinned statement for what the pod's broker requests, and no layers", () => {
    expect(only(example.module, "token_broker")).toEqual({
      source: "../..",
      audience: "${var.audience}",
      role_name: "${aws_iam_role.broker.name}",
      publish_layers: false,
    });
    // The audience, algorithm and lifetime the pod's broker sends with every GetWebIdentityToken.
    const { audience, awsSigningAlgorithm, awsTokenDurationSeconds } = broker;
    const terraform = new TerraformEvaluator(module, {
      variables: { audience, role_name: exampleEvaluator().attribute("aws_iam_role", "broker", "name") },
      projectNumber: "",
    });
    const document = only(module.data.aws_iam_policy_document, "web_identity_token");
    const [statement] = terraform.resolve(document.statement) as PolicyDocumentStatement[];
    const expected = expectedWebIdentityTokenStatement({
      audience,
      signingAlgorithm: awsSigningAlgorithm,
      durationSeconds: awsTokenDurationSeconds,
    });
    // Terraform renders the duration as a string, which IAM compares as the number.
    expect(iamStatement(statement as PolicyDocumentStatement)).toEqual(
      JSON.parse(
        JSON.stringify(expected, (_key, value) => (typeof value === "number" ? String(value) : value)),
      ),
    );
    const attachment = only(module.resource.aws_iam_role_policy, "web_identity_token");
    expect(terraform.resolve(attachment.role)).toBe("token-broker-demo-eks");
    // With publish_layers = false the layers' for_each is empty: no zip is read, no layer published.
    expect(only(module.resource.aws_lambda_layer_version, "broker").for_each).toBe(
      "${{ for key, layer in local.layers : key => layer if var.publish_layers }}",
    );
    expect(only(example.output, "policy_json").value).toBe("${module.token_broker.policy_json}");
  });
});
