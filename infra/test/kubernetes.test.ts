import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { Deployment } from "kubernetes-models/apps/v1";
import { ServiceAccount } from "kubernetes-models/v1";
import { beforeAll, describe, expect, it } from "vitest";
import { audiencePattern, defaults, loadConfig, variables } from "../../broker/config.ts";
import { workloadEnvironment } from "../constructs/broker-settings.ts";
import {
  brokerContainer,
  brokerEnvironment,
  type DeploymentData,
  deployment,
  type Manifest,
  readManifests,
  type ServiceAccountData,
  serviceAccount,
} from "./demo-app-manifest.ts";

/*
 * infra/kubernetes/demo-app.yaml read as kubectl would: every document validated offline against
 * the Kubernetes API schema (kubernetes-models, generated from Kubernetes' OpenAPI definitions),
 * then held to what the broker and its image need.
 */

const repositoryRoot = path.resolve(import.meta.dirname, "..", "..");
const run = promisify(execFile);
let manifests: Manifest[];

beforeAll(() => {
  manifests = readManifests();
});

/** The schema's model for a manifest; its `validate()` throws with the failing paths. */
function model(manifest: Manifest): { validate(): void } {
  if (manifest.apiVersion === "v1" && manifest.kind === "ServiceAccount")
    return new ServiceAccount(manifest as ServiceAccountData);
  if (manifest.apiVersion === "apps/v1" && manifest.kind === "Deployment")
    return new Deployment(manifest as DeploymentData);
  throw new Error(`no schema here for ${manifest.apiVersion} ${manifest.kind}`);
}

function pod() {
  const spec = deployment(manifests).spec?.template.spec;
  if (!spec) throw new Error("the Deployment has no pod template");
  return spec;
}

function broker() {
  return brokerContainer(manifests);
}

describe("infra/kubernetes/demo-app.yaml", () => {
  it("is a ServiceAccount and a Deployment that the Kubernetes schema accepts", () => {
    expect(manifests.map((manifest) => `${manifest.apiVersion} ${manifest.kind}`)).toEqual([
      "v1 ServiceAccount",
      "apps/v1 Deployment",
    ]);
    for (const manifest of manifests) expect(() => model(manifest).validate()).not.toThrow();
  });

  it("is checked by a validator that refuses what the API server would", () => {
    const broken = structuredClone(manifests[1] as Manifest) as unknown as {
      spec: {
        template: { spec: { initContainers: { ports: { containerPort: unknown }[]; name?: string }[] } };
      };
    };
    const [sidecar] = broken.spec.template.spec.initContainers;
    if (!sidecar) throw new Error("no init container");
    sidecar.ports[0] = { containerPort: "broker-ops" };
    expect(() => model(broken as unknown as Manifest).validate()).toThrow(/containerPort must be integer/);
    delete sidecar.name;
    expect(() => model(broken as unknown as Manifest).validate()).toThrow(
      /initContainers\/0 must have required property name/,
    );
  });

  it("names no field the API does not know (the schema check above lets extra fields through)", async () => {
    // TypeScript's excess-property check against the models' declarations (generated from the
    // same OpenAPI definitions) catches a misspelt field, which the API server would drop or refuse.
    const scratch = await mkdtemp(path.join(repositoryRoot, "node_modules", ".cache", "k8s-fields-"));
    try {
      const literal = (manifest: Manifest) => JSON.stringify(manifest, null, 2);
      await writeFile(
        path.join(scratch, "manifests.ts"),
        [
          'import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";',
          'import type { IServiceAccount } from "kubernetes-models/v1/ServiceAccount";',
          `export const serviceAccount: IServiceAccount = ${literal(manifests[0] as Manifest)};`,
          `export const deployment: IDeployment = ${literal(manifests[1] as Manifest)};`,
          "",
        ].join("\n"),
      );
      const tsc = path.join(repositoryRoot, "node_modules", "typescript", "bin", "tsc");
      const options = ["--noEmit", "--strict", "--module", "nodenext", "--skipLibCheck"];
      const result = await run(process.execPath, [tsc, ...options, path.join(scratch, "manifests.ts")], {
        timeout: 60_000,
      }).catch((error: { stdout: string }) => ({ stdout: error.stdout }));
      expect(result.stdout).toBe("");
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }, 60_000);

  it("runs the broker as a native sidecar, ready on /readyz of the ops port", () => {
    const sidecar = broker();
    expect(sidecar.name).toBe("token-broker");
    expect(sidecar.restartPolicy).toBe("Always");
    const opsPort = Number(defaults.BROKER_OPS_PORT);
    expect(sidecar.ports).toEqual([{ name: "broker-ops", containerPort: opsPort, protocol: "TCP" }]);
    expect(sidecar.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "broker-ops" });
    // /readyz may take up to its 2 s deadline; the kubelet must wait longer than that.
    expect(sidecar.readinessProbe?.timeoutSeconds).toBeGreaterThan(2);
    expect(sidecar.startupProbe?.httpGet).toEqual({ path: "/healthz", port: "broker-ops" });
    expect(sidecar.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "broker-ops" });
    // The metadata listener stays on the pod's loopback (the broker's default host).
    expect(defaults.BROKER_HOST).toBe("127.0.0.1");
    expect(sidecar.env?.some((variable) => variable.name === "BROKER_HOST")).toBe(false);
  });

  it("opens the ops listener on the pod's address, where the kubelet's probes and Prometheus connect", () => {
    // Whatever the broker's default host, the manifest says it: httpGet probes go to the pod's IP.
    const opsPort = Number(defaults.BROKER_OPS_PORT);
    expect(brokerEnvironment(manifests).BROKER_OPS_HOST).toBe("0.0.0.0");
    for (const probe of [broker().startupProbe, broker().readinessProbe, broker().livenessProbe]) {
      expect(probe?.httpGet?.port).toBe("broker-ops");
      expect(probe?.exec).toBeUndefined();
    }
    expect(deployment(manifests).spec?.template.metadata?.annotations).toEqual({
      "prometheus.io/scrape": "true",
      "prometheus.io/port": String(opsPort),
      "prometheus.io/path": "/metrics",
    });
    // The broker starts with that environment: the ops listener wide, the metadata one on loopback.
    const config = loadConfig(brokerEnvironment(manifests));
    expect(config).toMatchObject({ host: "127.0.0.1", opsHost: "0.0.0.0", opsPort, allowRemote: false });
    expect(config.warnings).toEqual([]);
  });

  it("runs every container without root, privilege escalation or a writable root file system", () => {
    const spec = pod();
    expect(spec.hostNetwork).toBe(false);
    // The image's USER (Dockerfile), so the pod-level setting and the image agree.
    const dockerfile = readFileSync(path.join(repositoryRoot, "Dockerfile"), "utf8");
    expect(dockerfile).toMatch(/^USER 65532:65532$/m);
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532 });
    for (const container of [...(spec.initContainers ?? []), ...spec.containers]) {
      expect(container.securityContext, container.name).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ["ALL"] },
      });
    }
  });

  it("configures the broker with variables it knows, and a valid audience once filled in", () => {
    const environment = brokerEnvironment(manifests);
    const known = new Set(variables.map((variable) => variable.name));
    for (const name of Object.keys(environment).filter((name) => name.startsWith("BROKER_"))) {
      expect(known.has(name), name).toBe(true);
    }
    expect(audiencePattern.test(environment.BROKER_AUDIENCE ?? "")).toBe(true);
    expect(environment).toMatchObject({
      BROKER_AWS_TOKEN_DURATION: defaults.BROKER_AWS_TOKEN_DURATION,
      BROKER_AWS_SIGNING_ALGORITHM: defaults.BROKER_AWS_SIGNING_ALGORITHM,
      AWS_REGION: "eu-west-1",
    });
  });

  it("gives the app container what the CDK constructs give a Node workload", () => {
    const [app] = pod().containers;
    const environment = Object.fromEntries((app?.env ?? []).map(({ name, value }) => [name, value]));
    expect(
      Object.fromEntries(Object.entries(environment).filter(([name]) => !name.startsWith("GOOGLE_"))),
    ).toEqual(workloadEnvironment({ node: true }));
  });

  it("takes AWS credentials from IRSA on the pod's service account", () => {
    const account = serviceAccount(manifests);
    expect(pod().serviceAccountName).toBe(account.metadata?.name);
    expect(account.metadata?.annotations?.["eks.amazonaws.com/role-arn"]).toMatch(
      /^arn:aws:iam::<ACCOUNT>:role\/[A-Za-z0-9+=,.@_-]+$/,
    );
  });
});
