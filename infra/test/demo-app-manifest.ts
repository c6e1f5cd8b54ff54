import { readFileSync } from "node:fs";
import path from "node:path";
import { Deployment } from "kubernetes-models/apps/v1";
import { ServiceAccount } from "kubernetes-models/v1";
import { parseAllDocuments } from "yaml";

/** infra/kubernetes/demo-app.yaml, read as kubectl reads it, for the tests that hold others to it. */

export const manifestFile = path.resolve(import.meta.dirname, "..", "kubernetes", "demo-app.yaml");
export type Manifest = { apiVersion: string; kind: string } & Record<string, unknown>;
// What the YAML holds is unchecked until `validate()`: the models take it as their input type.
export type ServiceAccountData = ConstructorParameters<typeof ServiceAccount>[0];
export type DeploymentData = ConstructorParameters<typeof Deployment>[0];

/** Every document of the file, as plain data; a YAML error throws with its message. */
export function readManifests(): Manifest[] {
  const documents = parseAllDocuments(readFileSync(manifestFile, "utf8"));
  if (!Array.isArray(documents)) throw new Error("demo-app.yaml is empty");
  const errors = documents.flatMap((document) => document.errors.map((error) => error.message));
  if (errors.length > 0) throw new Error(`demo-app.yaml: ${errors.join("; ")}`);
  return documents.map((document) => document.toJS() as Manifest);
}

export function serviceAccount(manifests: readonly Manifest[]): ServiceAccount {
  return new ServiceAccount(
    manifests.find((manifest) => manifest.kind === "ServiceAccount") as ServiceAccountData,
  );
}

export function deployment(manifests: readonly Manifest[]): Deployment {
  return new Deployment(manifests.find((manifest) => manifest.kind === "Deployment") as DeploymentData);
}

/** The broker's container: the pod's first init container, a native sidecar. */
export function brokerContainer(manifests: readonly Manifest[]) {
  const [sidecar] = deployment(manifests).spec?.template.spec?.initContainers ?? [];
  if (!sidecar) throw new Error("the Deployment has no init container");
  return sidecar;
}

/** The broker's environment, its `<...>` placeholders filled in as a user would. */
export function brokerEnvironment(manifests: readonly Manifest[]): Record<string, string> {
  const filled: Record<string, string> = { "<PROJECT_NUMBER>": "987654321098", "<REGION>": "eu-west-1" };
  return Object.fromEntries(
    (brokerContainer(manifests).env ?? []).map(({ name, value = "" }) => [
      name,
      value.replace(/<[A-Z_]+>/g, (placeholder) => filled[placeholder] ?? placeholder),
    ]),
  );
}
