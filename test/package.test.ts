import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "./support/child.ts";
import { type PackedPackage, packRepository } from "./support/packed-package.ts";

/*
 * The package as a user gets it: `npm pack` of the repository's files (in a copy, so its
 * prepack builds write nowhere near this checkout's dist/), installed with npm from the local
 * cache into a throwaway CDK app that already has aws-cdk-lib and constructs; then the app's two
 * entries (one function; every construct) are type-checked and synthesized offline, and the
 * `token-broker` bin is run through npx.
 */

const run = promisify(execFile);
const audience =
  "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider";
let work: string;
let app: string;
let packed: PackedPackage;
/** The app's lockfile entries (`node_modules/…`) that installing the tarball added. */
let addedByPackage: string[];

async function npm(args: readonly string[], cwd: string, timeout = 120_000) {
  return run("npm", [...args], { cwd, timeout, maxBuffer: 16 * 1024 * 1024 });
}

/** The smallest use: one Python function, the stack's shared layer, an audience from providerAudience. */
const oneFunctionApp = `import { App, Stack } from "aws-cdk-lib";
import { Architecture, Code, Function as LambdaFunction, Runtime } from "aws-cdk-lib/aws-lambda";
import { LambdaTokenBroker, providerAudience } from "token-broker/cdk";

const app = new App();
const stack = new Stack(app, "OneFunction", { env: { account: "123456789012", region: "eu-west-1" } });
const fn = new LambdaFunction(stack, "Python", {
  runtime: Runtime.PYTHON_3_13,
  architecture: Architecture.ARM_64,
  handler: "index.handler",
  code: Code.fromInline("def handler(event, context):\\n    return 1\\n"),
});
new LambdaTokenBroker(stack, "Broker", {
  function: fn,
  broker: {
    audience: providerAudience({ projectNumber: "987654321098", poolId: "aws-pool", providerId: "aws-provider" }),
  },
});
app.synth();
`;

const consumerApp = `import { App, Stack } from "aws-cdk-lib";
import { ContainerImage, FargateTaskDefinition } from "aws-cdk-lib/aws-ecs";
import { Architecture, Code, Function as LambdaFunction, Runtime } from "aws-cdk-lib/aws-lambda";
import {
  type BrokerSettings,
  LambdaTokenBroker,
  OutboundFederation,
  TokenBrokerLayer,
  TokenBrokerSidecar,
} from "token-broker/cdk";

const app = new App(); // cdk.out, or CDK_OUTDIR as the CDK CLI sets it
const stack = new Stack(app, "Consumer", { env: { account: "123456789012", region: "eu-west-1" } });
const broker: BrokerSettings = { audience: "${audience}" };
new OutboundFederation(stack, "Federation");
const layer = new TokenBrokerLayer(stack, "Layer");
for (const [id, runtime, architecture] of [
  ["Python", Runtime.PYTHON_3_13, Architecture.ARM_64],
  ["Node", Runtime.NODEJS_24_X, Architecture.X86_64],
] as const) {
  const fn = new LambdaFunction(stack, id, {
    runtime,
    architecture,
    handler: "index.handler",
    code: Code.fromInline("exports.handler = async () => 1;"),
  });
  new LambdaTokenBroker(stack, \`\${id}Broker\`, { function: fn, layer, broker });
}
const taskDefinition = new FargateTaskDefinition(stack, "Task");
new TokenBrokerSidecar(stack, "Sidecar", {
  taskDefinition,
  broker,
  image: ContainerImage.fromRegistry("registry.example/token-broker:0.1.0"),
});
let sidecarImageError = "";
try {
  TokenBrokerSidecar.image();
} catch (error) {
  sidecarImageError = (error as Error).message;
}
app.synth();
console.log(JSON.stringify({ sidecarImageError }));
`;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "token-broker-package-"));
  packed = await packRepository(work);

  app = path.join(work, "app");
  await mkdir(app);
  await writeFile(
    path.join(app, "package.json"),
    JSON.stringify({ name: "consumer", private: true, type: "module" }, null, 2),
  );
  const version = async (name: string) =>
    (
      JSON.parse(await readFile(path.join(repoRoot, "node_modules", name, "package.json"), "utf8")) as {
        version: string;
      }
    ).version;
  // Tarballs come from npm's cache (every package here is in the repository's lockfile, which
  // `npm ci` installed); only the registry's package metadata may be fetched, once.
  const install = (...specs: string[]) =>
    npm(["install", "--prefer-offline", "--ignore-scripts", "--no-audit", "--no-fund", ...specs], app);
  const installed = async () =>
    Object.keys(
      (JSON.parse(await readFile(path.join(app, "package-lock.json"), "utf8")) as { packages: object })
        .packages,
    );
  await install(`aws-cdk-lib@${await version("aws-cdk-lib")}`, `constructs@${await version("constructs")}`);
  const before = new Set(await installed());
  await install(packed.tarball);
  addedByPackage = (await installed()).filter((entry) => !before.has(entry));
  await writeFile(path.join(app, "one-function.ts"), oneFunctionApp);
  await writeFile(path.join(app, "app.ts"), consumerApp);
}, 400_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe("npm pack", () => {
  it("ships the bin, the compiled CDK library with its declarations, the layer zips and the docs, and no sources", () => {
    const files = packed.files.map((file) => file.path).sort();
    expect(files).toEqual(
      expect.arrayContaining(["package.json", "README.md", "LICENSE", "dist/token-broker.mjs"]),
    );
    expect(files).toEqual(
      expect.arrayContaining([
        "dist/cdk/infra/index.js",
        "dist/cdk/infra/index.d.ts",
        "dist/cdk/infra/constructs/lambda-token-broker.js",
        "dist/layers/token-broker-nodejs-x86_64.zip",
        "dist/layers/token-broker-nodejs-arm64.zip",
        "dist/layers/token-broker-standalone-x86_64.zip",
        "dist/layers/token-broker-standalone-arm64.zip",
        "docs/metadata-server.md",
        "infra/terraform/aws/main.tf",
        "infra/kubernetes/demo-app.yaml",
      ]),
    );
    expect(files.filter((file) => file.endsWith(".ts") && !file.endsWith(".d.ts"))).toEqual([]);
    expect(files.filter((file) => /^(test|bench|scripts|node_modules)\//.test(file))).toEqual([]);
    // The library is the constructs alone: no demo stack is compiled into it.
    expect(
      files.filter(
        (file) =>
          file.startsWith("dist/cdk/") &&
          !/^dist\/cdk\/(infra\/constructs\/|infra\/index\.|broker\/)/.test(file),
      ),
    ).toEqual([]);
  });

  it("builds the layers saying each step: bundling, each standalone flavour's Node and where it came from, each zip", () => {
    const steps = packed.buildOutput.split("\n").filter((line) => /^(bundling|standalone|wrote) /.test(line));
    const version = /Node (\d+\.\d+\.\d+)/.exec(packed.buildOutput)?.[1] ?? "(none)";
    const cache = "node_modules/.cache/token-broker-layer";
    // Fetched from the registry on a machine's first layer build, from the cache after that.
    const node = (architecture: string, npmArch: string) =>
      expect.toBeOneOf([
        `standalone ${architecture}: fetching Node ${version} from the npm registry (package node-linux-${npmArch}@${version}, checked against its integrity hash) into ${cache}`,
        `standalone ${architecture}: Node ${version} from ${cache}/node-linux-${npmArch}-${version} (fetched before)`,
      ]);
    const training = (architecture: string) =>
      architecture === (process.arch === "arm64" ? "arm64" : "x86_64")
        ? [
            `standalone ${architecture}: training the V8 code cache (one start-up of the extension against a stand-in Extensions API)`,
          ]
        : [];
    expect(steps).toEqual([
      "bundling the extension with esbuild (lambda-extension/ and broker/, split into lazily loaded parts)",
      "wrote dist/layers/token-broker-nodejs-x86_64.zip",
      "wrote dist/layers/token-broker-nodejs-arm64.zip",
      node("x86_64", "x64"),
      ...training("x86_64"),
      "wrote dist/layers/token-broker-standalone-x86_64.zip",
      node("arm64", "arm64"),
      ...training("arm64"),
      "wrote dist/layers/token-broker-standalone-arm64.zip",
    ]);
  });

  it("lets the Terraform module find the layer zips in the installed package, as in a clone", () => {
    const installed = path.join(app, "node_modules", "token-broker");
    // infra/terraform/aws's default layers_directory: "${path.module}/../../../dist/layers".
    const layers = path.resolve(installed, "infra", "terraform", "aws", "../../../dist/layers");
    expect(layers).toBe(path.join(installed, "dist", "layers"));
    for (const zip of packed.files.filter((file) => file.path.startsWith("dist/layers/"))) {
      expect(existsSync(path.join(layers, path.basename(zip.path))), zip.path).toBe(true);
    }
  });

  it("adds only itself to an app that has aws-cdk-lib and constructs: the bin is bundled, the constructs import no other package", () => {
    expect(addedByPackage).toEqual(["node_modules/token-broker"]);
  });

  it("installs a token-broker bin that npx runs", async () => {
    const options = { cwd: app, timeout: 30_000 };
    const version = await run("npx", ["--offline", "token-broker", "--version"], options);
    const packageJson = JSON.parse(await readFile(path.join(repoRoot, "package.json"), "utf8")) as {
      version: string;
    };
    expect(version.stdout.trim()).toBe(packageJson.version);
    const { stdout } = await run("npx", ["--offline", "token-broker", "--help"], options);
    expect(stdout).toContain("BROKER_AUDIENCE");
    expect(stdout).toContain("BROKER_PORT");
  });
});

interface Template {
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
}

/** What one entry of the app synthesizes: its template, the files staged for upload, its output. */
interface Synthesized {
  template: Template;
  /** Each staged file asset by its S3 key's hash, the template itself left out. */
  staged: Map<string, string>;
  outdir: string;
  stdout: string;
}

async function synthesize(entry: string, stack: string): Promise<Synthesized> {
  const outdir = path.join(work, `${stack}.out`);
  const { stdout } = await run(process.execPath, [entry], {
    cwd: app,
    env: { ...process.env, CDK_OUTDIR: outdir },
    timeout: 60_000,
  });
  const template = JSON.parse(
    await readFile(path.join(outdir, `${stack}.template.json`), "utf8"),
  ) as Template;
  const assets = JSON.parse(await readFile(path.join(outdir, `${stack}.assets.json`), "utf8")) as {
    files: Record<string, { source: { path: string } }>;
  };
  const staged = new Map(
    Object.entries(assets.files)
      .filter(([, file]) => file.source.path !== `${stack}.template.json`)
      .map(([hash, file]) => [hash, path.join(outdir, file.source.path)]),
  );
  return { template, staged, outdir, stdout };
}

function resources(template: Template, type: string) {
  return Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);
}

const sha256 = async (file: string) =>
  createHash("sha256")
    .update(await readFile(file))
    .digest("hex");

/** Each layer version's description, and whether its staged zip is the one the package ships. */
async function publishedLayers(synthesized: Synthesized) {
  const shipped = path.join(app, "node_modules", "token-broker", "dist", "layers");
  return Promise.all(
    resources(synthesized.template, "AWS::Lambda::LayerVersion").map(async ([, layer]) => {
      const { S3Key } = layer.Properties.Content as { S3Key: string };
      const description = String(layer.Properties.Description);
      const [, flavour, architecture] = /(\w+) flavour, (\w+)$/.exec(description) ?? [];
      const staged = synthesized.staged.get(S3Key.replace(/\.zip$/, "")) ?? "(none)";
      const zip = path.join(shipped, `token-broker-${flavour}-${architecture}.zip`);
      return { description, stagedFromPackage: (await sha256(staged)) === (await sha256(zip)) };
    }),
  );
}

describe("token-broker/cdk in a CDK app of its own", () => {
  beforeAll(async () => {
    // The app's own tsc settings, strict and without allowImportingTsExtensions, as a consumer's would be.
    await writeFile(
      path.join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "es2022",
          module: "nodenext",
          moduleResolution: "nodenext",
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: [],
        },
        files: ["one-function.ts", "app.ts"],
      }),
    );
  });

  it("type-checks against the shipped declarations", async () => {
    const tsc = path.join(repoRoot, "node_modules", "typescript", "bin", "tsc");
    const result = await run(process.execPath, [tsc, "-p", "tsconfig.json"], {
      cwd: app,
      timeout: 60_000,
    }).catch((error: { stdout: string }) => ({ stdout: error.stdout }));
    expect(result.stdout).toBe("");
  });

  describe("one function", () => {
    let synthesized: Synthesized;
    beforeAll(async () => {
      synthesized = await synthesize("one-function.ts", "OneFunction");
    }, 120_000);

    it("stages exactly one layer asset, the standalone arm64 zip the package ships", async () => {
      expect(await publishedLayers(synthesized)).toEqual([
        { description: "token-broker Lambda extension, standalone flavour, arm64", stagedFromPackage: true },
      ]);
      expect([...synthesized.staged.values()]).toHaveLength(1);
      const staged = (await readdir(synthesized.outdir)).filter((entry) => entry.startsWith("asset."));
      expect(staged).toHaveLength(1);
    });

    it("configures the broker with the audience providerAudience built", () => {
      const [[, fn] = []] = resources(synthesized.template, "AWS::Lambda::Function");
      expect(fn?.Properties.Environment).toMatchObject({
        Variables: { BROKER_AUDIENCE: audience, GCE_METADATA_HOST: "127.0.0.1:8181" },
      });
    });
  });

  describe("every construct", () => {
    let synthesized: Synthesized;
    let logged: { sidecarImageError: string };
    beforeAll(async () => {
      synthesized = await synthesize("app.ts", "Consumer");
      logged = JSON.parse(synthesized.stdout.trim().split("\n").at(-1) ?? "{}");
    }, 120_000);

    it("publishes the layer versions its two functions run, from the zips inside the installed package", async () => {
      expect(await publishedLayers(synthesized)).toEqual([
        { description: "token-broker Lambda extension, standalone flavour, arm64", stagedFromPackage: true },
        { description: "token-broker Lambda extension, nodejs flavour, x86_64", stagedFromPackage: true },
      ]);
    });

    it("gives each function the layer for its runtime and the broker's environment", () => {
      const { template } = synthesized;
      const functions = Object.fromEntries(
        resources(template, "AWS::Lambda::Function").map(([, fn]) => [
          String(fn.Properties.Runtime),
          fn.Properties,
        ]),
      );
      const layerOf = (runtime: string) => {
        const [reference] = (functions[runtime]?.Layers ?? []) as { Ref: string }[];
        return String(template.Resources[reference?.Ref ?? ""]?.Properties.Description);
      };
      expect(layerOf("python3.13")).toBe("token-broker Lambda extension, standalone flavour, arm64");
      expect(layerOf("nodejs24.x")).toBe("token-broker Lambda extension, nodejs flavour, x86_64");
      const { Variables: environment } = (functions["nodejs24.x"]?.Environment ?? {}) as {
        Variables: Record<string, string>;
      };
      expect(environment).toMatchObject({
        BROKER_AUDIENCE: audience,
        GCE_METADATA_HOST: "127.0.0.1:8181",
        METADATA_SERVER_DETECTION: "assume-present",
      });
    });

    it("grants sts:GetWebIdentityToken for the audience only, and turns on outbound federation", () => {
      const statements = resources(synthesized.template, "AWS::IAM::Policy").flatMap(
        ([, policy]) =>
          (policy.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement,
      );
      const minting = statements.filter((statement) => statement.Action === "sts:GetWebIdentityToken");
      expect(minting).toHaveLength(3); // two functions and the task role
      for (const statement of minting) {
        expect(statement.Condition).toMatchObject({
          "ForAllValues:StringEquals": { "sts:IdentityTokenAudience": audience },
          Null: { "sts:IdentityTokenAudience": "false" },
        });
      }
      expect(resources(synthesized.template, "Custom::AWS")).toHaveLength(2);
    });

    it("runs the sidecar from the given image, and says why an installed package cannot build one", () => {
      const [[, task] = []] = resources(synthesized.template, "AWS::ECS::TaskDefinition");
      const [container] = (task?.Properties.ContainerDefinitions ?? []) as { Image: string; Name: string }[];
      expect(container).toMatchObject({ Name: "token-broker", Image: "registry.example/token-broker:0.1.0" });
      expect(logged.sidecarImageError).toBe(
        `TokenBrokerSidecar: ${path.join(app, "node_modules", "token-broker")} is an installed package, which cannot build the broker image; build it from a clone (docker build .), push it, and pass image: ContainerImage.fromRegistry("<registry>/token-broker:<tag>")`,
      );
    });
  });
});
