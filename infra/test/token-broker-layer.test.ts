import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type App, type CfnElement, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { Architecture, Code, Function as LambdaFunction, Runtime } from "aws-cdk-lib/aws-lambda";
import { AssetManifestArtifact } from "aws-cdk-lib/cx-api";
import { describe, expect, it } from "vitest";
import { layerFileName } from "../../scripts/layer.ts";
import { LambdaTokenBroker } from "../constructs/lambda-token-broker.ts";
import { layerZipName, TokenBrokerLayer } from "../constructs/token-broker-layer.ts";
import { makeLayerFixtures } from "./layer-fixtures.ts";
import { testApp } from "./synth.ts";

const layersDirectory = makeLayerFixtures();
const audience =
  "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider";

function layerVersions(stack: Stack) {
  return Object.values(Template.fromStack(stack).findResources("AWS::Lambda::LayerVersion")).map(
    (resource) => {
      const { Description, CompatibleArchitectures, CompatibleRuntimes, LicenseInfo } = resource.Properties;
      return {
        Description,
        CompatibleArchitectures,
        CompatibleRuntimes,
        LicenseInfo,
        policy: resource.DeletionPolicy,
      };
    },
  );
}

/** A function with inline code, which stages no asset of its own. */
function attach(
  stack: Stack,
  id: string,
  runtime: Runtime,
  architecture: Architecture,
  layer?: TokenBrokerLayer,
) {
  const fn = new LambdaFunction(stack, id, {
    runtime,
    architecture,
    handler: "index.handler",
    code: Code.fromInline("exports.handler = async () => 1;"),
  });
  new LambdaTokenBroker(stack, `${id}Broker`, { function: fn, layer, broker: { audience } });
  return fn;
}

/** The files the cloud assembly stages for a stack to upload, its template left out. */
function stagedFiles(app: App, stack: Stack): string[] {
  const assembly = app.synth();
  const manifest = assembly
    .getStackArtifact(stack.artifactId)
    .dependencies.find((artifact) => artifact instanceof AssetManifestArtifact);
  return Object.values(manifest?.contents.files ?? {})
    .map((file) => file.source.path ?? "")
    .filter((file) => !file.endsWith(".template.json"));
}

describe("TokenBrokerLayer", () => {
  it("publishes nothing until a function needs a version", () => {
    const stack = new Stack(testApp(), "Unused");
    const used = new TokenBrokerLayer(stack, "Used", { layersDirectory });
    const unused = new TokenBrokerLayer(stack, "Unused", { layersDirectory });
    attach(stack, "Python", Runtime.PYTHON_3_13, Architecture.X86_64, used);
    expect(unused.node.children).toEqual([]);
    expect(layerVersions(stack).map((version) => version.Description)).toEqual([
      "token-broker Lambda extension, standalone flavour, x86_64",
    ]);
  });

  it("publishes one version per flavour and architecture asked for, with what each runs beside", () => {
    const stack = new Stack(testApp(), "Layers");
    const layer = new TokenBrokerLayer(stack, "Layer", { layersDirectory });
    for (const flavour of ["nodejs", "standalone"] as const) {
      for (const architecture of [Architecture.X86_64, Architecture.ARM_64]) {
        expect(layer.version(flavour, architecture)).toBe(layer.version(flavour, architecture));
      }
    }
    const expected = (flavour: string, architecture: string) => ({
      Description: `token-broker Lambda extension, ${flavour} flavour, ${architecture}`,
      CompatibleArchitectures: [architecture],
      CompatibleRuntimes: flavour === "nodejs" ? ["nodejs22.x", "nodejs24.x"] : undefined,
      LicenseInfo: "Apache-2.0",
      policy: "Retain",
    });
    expect(layerVersions(stack)).toEqual([
      expected("nodejs", "x86_64"),
      expected("nodejs", "arm64"),
      expected("standalone", "x86_64"),
      expected("standalone", "arm64"),
    ]);
  });

  it("gives an app of functions only the versions they run, one shared by functions alike", () => {
    const stack = new Stack(testApp(), "Mixed");
    const layer = new TokenBrokerLayer(stack, "Layer", { layersDirectory });
    attach(stack, "PythonA", Runtime.PYTHON_3_13, Architecture.ARM_64, layer);
    attach(stack, "PythonB", Runtime.PYTHON_3_12, Architecture.ARM_64, layer);
    attach(stack, "Node", Runtime.NODEJS_24_X, Architecture.X86_64, layer);
    expect(layerVersions(stack).map((version) => version.Description)).toEqual([
      "token-broker Lambda extension, standalone flavour, arm64",
      "token-broker Lambda extension, nodejs flavour, x86_64",
    ]);
  });

  it("without a layer given, shares the stack's own, so a one-function stack stages one zip", () => {
    const app = testApp();
    const stack = new Stack(app, "OneFunction");
    // The shared layer is the one with this id in the stack; here with the fixture zips.
    const shared = new TokenBrokerLayer(stack, "TokenBrokerLayer", { layersDirectory });
    expect(TokenBrokerLayer.of(stack)).toBe(shared);
    const fn = attach(stack, "Python", Runtime.PYTHON_3_13, Architecture.ARM_64, undefined);
    const version = shared.node.findChild("standalone-arm64").node.defaultChild as CfnElement;
    const { Properties } = Template.fromStack(stack).toJSON().Resources[
      stack.getLogicalId(fn.node.defaultChild as CfnElement)
    ] as { Properties: { Layers: unknown[] } };
    expect(Properties.Layers).toEqual([{ Ref: stack.getLogicalId(version) }]);
    expect(stagedFiles(app, stack)).toEqual([expect.stringMatching(/^asset\.[0-9a-f]{64}\.zip$/)]);
  });

  it("reads the file names the layer build writes", () => {
    for (const flavour of ["nodejs", "standalone"] as const) {
      expect(layerZipName(flavour, Architecture.X86_64)).toBe(layerFileName(flavour, "x86_64"));
      expect(layerZipName(flavour, Architecture.ARM_64)).toBe(layerFileName(flavour, "arm64"));
    }
  });

  it("picks the function's own Node where it can, the standalone flavour elsewhere", () => {
    expect(TokenBrokerLayer.flavourFor(Runtime.NODEJS_24_X)).toBe("nodejs");
    expect(TokenBrokerLayer.flavourFor(Runtime.NODEJS_22_X)).toBe("nodejs");
    expect(TokenBrokerLayer.flavourFor(Runtime.NODEJS_20_X)).toBe("standalone");
    expect(TokenBrokerLayer.flavourFor(Runtime.PYTHON_3_13)).toBe("standalone");
    expect(TokenBrokerLayer.flavourFor(Runtime.PROVIDED_AL2023)).toBe("standalone");
  });

  it("says which command builds a zip a function needs when it is missing", () => {
    const empty = mkdtempSync(path.join(tmpdir(), "token-broker-no-layers-"));
    const stack = new Stack(testApp(), "Missing");
    const layer = new TokenBrokerLayer(stack, "Layer", { layersDirectory: empty });
    expect(() => attach(stack, "Python", Runtime.PYTHON_3_13, Architecture.ARM_64, layer)).toThrow(
      `TokenBrokerLayer: ${path.join(empty, "token-broker-standalone-arm64.zip")} does not exist; run \`npm run build:layer\` first (or pass layersDirectory)`,
    );
  });
});
