import {
  type CfnFunction,
  type Function as LambdaFunction,
  Runtime,
  RuntimeFamily,
} from "aws-cdk-lib/aws-lambda";
import { Construct } from "constructs";
import {
  type BrokerSettings,
  brokerEnvironment,
  validateBrokerSettings,
  workloadEnvironment,
} from "./broker-settings.ts";
import { TokenBrokerLayer } from "./token-broker-layer.ts";
import { webIdentityTokenPolicy } from "./web-identity-token-policy.ts";

export interface LambdaTokenBrokerProps {
  /** The function that gets Google credentials; any runtime, either architecture. */
  readonly function: LambdaFunction;
  /**
   * The layers to choose from; the function gets the one version that fits it, created on first use.
   * @default - the function's stack's shared layer, `TokenBrokerLayer.of(function)`
   */
  readonly layer?: TokenBrokerLayer;
  /** Audience, service account and token settings of the broker. */
  readonly broker: BrokerSettings;
}

/** Whether the function runs on a Lambda Managed Instances capacity provider (`CapacityProvider.addFunction`). */
function onManagedInstances(fn: LambdaFunction): boolean {
  return (fn.node.defaultChild as CfnFunction | undefined)?.capacityProviderConfig !== undefined;
}

/**
 * Attaches the broker to a Lambda function, in every Lambda mode: the layer version for its runtime
 * and architecture, the `BROKER_*` and `GCE_METADATA_*` settings, and the one permission on its role.
 * How, and Managed Instances' order of attachment: infra/README.md ("Attach the broker…").
 */
export class LambdaTokenBroker extends Construct {
  constructor(scope: Construct, id: string, props: LambdaTokenBrokerProps) {
    super(scope, id);
    const fn = props.function;
    validateBrokerSettings(props.broker);
    if (fn.runtime.runtimeEquals(Runtime.FROM_IMAGE)) {
      throw new Error(
        `LambdaTokenBroker: ${fn.node.path} is a container-image function, which cannot use layers; copy the extension into the image at /opt/extensions instead`,
      );
    }
    const role = fn.role;
    if (!role) {
      throw new Error(
        `LambdaTokenBroker: ${fn.node.path} has no execution role to grant sts:GetWebIdentityToken`,
      );
    }

    const layer = props.layer ?? TokenBrokerLayer.of(fn);
    fn.addLayers(layer.forFunction(fn.runtime, fn.architecture));
    const managedInstances = onManagedInstances(fn);
    const environment = {
      ...brokerEnvironment(props.broker),
      ...workloadEnvironment({ node: fn.runtime.family === RuntimeFamily.NODEJS }),
      ...(managedInstances ? { BROKER_OPS_HOST: "127.0.0.1" } : {}),
    };
    for (const [name, value] of Object.entries(environment)) fn.addEnvironment(name, value);

    const policy = webIdentityTokenPolicy(this, props.broker);
    role.attachInlinePolicy(policy);
    // The first invocation must not race the permission. Only the CloudFormation function waits:
    // the function construct also holds its role, which the policy itself needs first.
    fn.node.defaultChild?.node.addDependency(policy);

    this.node.addValidation({
      validate: () =>
        !managedInstances && onManagedInstances(fn)
          ? [
              `LambdaTokenBroker: ${fn.node.path} was added to a capacity provider after the broker was attached; call capacityProvider.addFunction() first, so the broker's ops listener stays on loopback on Lambda Managed Instances`,
            ]
          : [],
    });
  }
}
