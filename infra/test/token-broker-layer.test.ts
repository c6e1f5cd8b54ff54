import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { Architecture, Runtime } from "aws-cdk-lib/aws-lambda";
import { describe, expect, it } from "vitest";
import { layerFileName } from "../../scripts/layer.ts";
import { layerZipName, TokenBrokerLayer } from "../constructs/token-broker-layer.ts";
import { makeLayerFixtures } from "./layer-fixtures.ts";
import { testApp } from "./synth.ts";

describe("TokenBrokerLayer", () => {
  it("publishes one layer version per flavour and architecture, with what each runs beside", () => {
    const stack = new Stack(testApp(), "Layers");
    new TokenBrokerLayer(stack, "Layer", { layersDirectory: makeLayerFixtures() });
    const layers = Object.values(Template.fromStack(stack).findResources("AWS::Lambda::LayerVersion")).map(
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
    expect(layers).toEqual([
      {
        Description: "token-broker Lambda extension, nodejs flavour, x86_64",
        CompatibleArchitectures: ["x86_64"],
        CompatibleRuntimes: ["nodejs22.x", "nodejs24.x"],
        LicenseInfo: "Apache-2.0",
        policy: "Retain",
      },
      {
        Description: "token-broker Lambda extension, nodejs flavour, arm64",
        CompatibleArchitectures: ["arm64"],
        CompatibleRuntimes: ["nodejs22.x", "nodejs24.x"],
        LicenseInfo: "Apache-2.0",
        policy: "Retain",
      },
      {
        Description: "token-broker Lambda extension, standalone flavour, x86_64",
        CompatibleArchitectures: ["x86_64"],
        CompatibleRuntimes: undefined,
        LicenseInfo: "Apache-2.0",
        policy: "Retain",
      },
      {
        Description: "token-broker Lambda extension, standalone flavour, arm64",
        CompatibleArchitectures: ["arm64"],
        CompatibleRuntimes: undefined,
        LicenseInfo: "Apache-2.0",
        policy: "Retain",
      },
    ]);
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

  it("says which command builds the zips when they are missing", () => {
    const empty = mkdtempSync(path.join(tmpdir(), "token-broker-no-layers-"));
    const stack = new Stack(testApp(), "Missing");
    expect(() => new TokenBrokerLayer(stack, "Layer", { layersDirectory: empty })).toThrow(
      `TokenBrokerLayer: ${path.join(empty, "token-broker-nodejs-x86_64.zip")} does not exist; run \`npm run build:layer\` first (or pass layersDirectory)`,
    );
  });
});
