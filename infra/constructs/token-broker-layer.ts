import { existsSync } from "node:fs";
import path from "node:path";
import { RemovalPolicy } from "aws-cdk-lib";
import { Architecture, Code, LayerVersion, Runtime, RuntimeFamily } from "aws-cdk-lib/aws-lambda";
import { Construct } from "constructs";
import { packageRoot } from "./package-root.ts";

/**
 * `nodejs` runs the extension on the function's own Node (small, for Node 22+ functions);
 * `standalone` carries Node 24 and so runs beside any runtime.
 */
export type LayerFlavour = "nodejs" | "standalone";

export interface TokenBrokerLayerProps {
  /**
   * Folder holding the zips `npm run build:layer` writes:
   * `token-broker-{nodejs,standalone}-{x86_64,arm64}.zip`.
   * @default - `dist/layers` of the token-broker package (of this repository, in a clone)
   */
  readonly layersDirectory?: string;
  /** @default RemovalPolicy.RETAIN, so functions deployed elsewhere keep their layer version */
  readonly removalPolicy?: RemovalPolicy;
}

const flavours: readonly LayerFlavour[] = ["nodejs", "standalone"];
const architectures: readonly Architecture[] = [Architecture.X86_64, Architecture.ARM_64];

/** Node majors whose runtime can run the `nodejs` flavour (the Google SDK majors need Node >= 22). */
const nodejsFlavourRuntimes: readonly Runtime[] = [Runtime.NODEJS_22_X, Runtime.NODEJS_24_X];

/** The zip file name `npm run build:layer` gives a flavour for an architecture. */
export function layerZipName(flavour: LayerFlavour, architecture: Architecture): string {
  return `token-broker-${flavour}-${architecture.name}.zip`;
}

/**
 * The broker as a Lambda extension: one layer version per flavour and architecture (four in all).
 * Use {@link TokenBrokerLayer.forFunction} (or the `LambdaTokenBroker` construct) to pick the one
 * that fits a function.
 */
export class TokenBrokerLayer extends Construct {
  readonly #versions = new Map<string, LayerVersion>();

  constructor(scope: Construct, id: string, props: TokenBrokerLayerProps = {}) {
    super(scope, id);
    const directory = props.layersDirectory ?? path.join(packageRoot, "dist", "layers");
    for (const flavour of flavours) {
      for (const architecture of architectures) {
        const zip = path.join(directory, layerZipName(flavour, architecture));
        if (!existsSync(zip)) {
          throw new Error(
            `TokenBrokerLayer: ${zip} does not exist; run \`npm run build:layer\` first (or pass layersDirectory)`,
          );
        }
        const version = new LayerVersion(this, `${flavour}-${architecture.name}`, {
          code: Code.fromAsset(zip),
          compatibleArchitectures: [architecture],
          // The standalone flavour brings its own Node, so it declares no runtime list: any list
          // would be capped at 15 entries by CloudFormation and make CDK refuse the layer for
          // every runtime left out (java11, python3.10, provided, ...), although it runs there.
          compatibleRuntimes: flavour === "nodejs" ? [...nodejsFlavourRuntimes] : undefined,
          description: `token-broker Lambda extension, ${flavour} flavour, ${architecture.name}`,
          license: "Apache-2.0",
          removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
        });
        this.#versions.set(`${flavour}/${architecture.name}`, version);
      }
    }
  }

  /** The layer version of one flavour and architecture. */
  version(flavour: LayerFlavour, architecture: Architecture): LayerVersion {
    const version = this.#versions.get(`${flavour}/${architecture.name}`);
    if (!version) throw new Error(`TokenBrokerLayer: no layer for ${flavour}/${architecture.name}`);
    return version;
  }

  /**
   * The flavour that runs beside a runtime: the function's own Node where it is new enough,
   * otherwise the standalone one.
   */
  static flavourFor(runtime: Runtime): LayerFlavour {
    if (
      runtime.family === RuntimeFamily.NODEJS &&
      nodejsFlavourRuntimes.some((r) => r.runtimeEquals(runtime))
    ) {
      return "nodejs";
    }
    return "standalone";
  }

  /** The layer version for a function's runtime and architecture. */
  forFunction(runtime: Runtime, architecture: Architecture): LayerVersion {
    return this.version(TokenBrokerLayer.flavourFor(runtime), architecture);
  }
}
