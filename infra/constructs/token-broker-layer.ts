import { existsSync } from "node:fs";
import path from "node:path";
import { RemovalPolicy, Stack } from "aws-cdk-lib";
import { type Architecture, Code, LayerVersion, Runtime, RuntimeFamily } from "aws-cdk-lib/aws-lambda";
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

/** Node majors whose runtime can run the `nodejs` flavour (the Google SDK majors need Node >= 22). */
const nodejsFlavourRuntimes: readonly Runtime[] = [Runtime.NODEJS_22_X, Runtime.NODEJS_24_X];

/** The id of the layer {@link TokenBrokerLayer.of} shares in a stack. */
const sharedId = "TokenBrokerLayer";

/** The zip file name `npm run build:layer` gives a flavour for an architecture. */
export function layerZipName(flavour: LayerFlavour, architecture: Architecture): string {
  return `token-broker-${flavour}-${architecture.name}.zip`;
}

/**
 * The broker as a Lambda extension: one layer version per flavour and architecture, created when
 * the first function needs it ({@link TokenBrokerLayer.forFunction}), so an app publishes only those.
 */
export class TokenBrokerLayer extends Construct {
  readonly #directory: string;
  readonly #removalPolicy: RemovalPolicy;
  readonly #versions = new Map<string, LayerVersion>();

  /**
   * The stack's shared layer, what `LambdaTokenBroker` takes by default: the `TokenBrokerLayer`
   * with id `TokenBrokerLayer` directly in the stack, created with the defaults on first use
   * (create it under that id first to give it props).
   */
  static of(scope: Construct): TokenBrokerLayer {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(sharedId);
    return existing instanceof TokenBrokerLayer ? existing : new TokenBrokerLayer(stack, sharedId);
  }

  constructor(scope: Construct, id: string, props: TokenBrokerLayerProps = {}) {
    super(scope, id);
    this.#directory = props.layersDirectory ?? path.join(packageRoot, "dist", "layers");
    this.#removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
  }

  /** The layer version of one flavour and architecture, created on the first call. */
  version(flavour: LayerFlavour, architecture: Architecture): LayerVersion {
    const key = `${flavour}-${architecture.name}`;
    const known = this.#versions.get(key);
    if (known) return known;
    const zip = path.join(this.#directory, layerZipName(flavour, architecture));
    if (!existsSync(zip)) {
      throw new Error(
        `TokenBrokerLayer: ${zip} does not exist; run \`npm run build:layer\` first (or pass layersDirectory)`,
      );
    }
    const version = new LayerVersion(this, key, {
      code: Code.fromAsset(zip),
      compatibleArchitectures: [architecture],
      // The standalone flavour brings its own Node, so it declares no runtime list: any list
      // would be capped at 15 entries by CloudFormation and make CDK refuse the layer for
      // every runtime left out (java11, python3.10, provided, ...), although it runs there.
      compatibleRuntimes: flavour === "nodejs" ? [...nodejsFlavourRuntimes] : undefined,
      description: `token-broker Lambda extension, ${flavour} flavour, ${architecture.name}`,
      license: "Apache-2.0",
      removalPolicy: this.#removalPolicy,
    });
    this.#versions.set(key, version);
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
