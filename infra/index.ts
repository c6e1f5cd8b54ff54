/**
 * `token-broker/cdk`: the constructs as a library, for CDK apps outside this repository.
 *
 * ```ts
 * import { LambdaTokenBroker, OutboundFederation, TokenBrokerLayer, TokenBrokerSidecar } from "token-broker/cdk";
 * ```
 *
 * `npm run build:cdk` compiles this entry and what it imports to dist/cdk (JavaScript and
 * declarations), since an app's `node` will not run this repository's TypeScript from node_modules.
 */
export {
  type BrokerSettings,
  metadataEndpoint,
  type ProviderAudienceParts,
  providerAudience,
  type SigningAlgorithm,
} from "./lib/broker-settings.ts";
export { LambdaTokenBroker, type LambdaTokenBrokerProps } from "./lib/lambda-token-broker.ts";
export { OutboundFederation, type OutboundFederationProps } from "./lib/outbound-federation.ts";
export {
  type LayerFlavour,
  layerZipName,
  TokenBrokerLayer,
  type TokenBrokerLayerProps,
} from "./lib/token-broker-layer.ts";
export {
  brokerOpsPort,
  TokenBrokerSidecar,
  type TokenBrokerSidecarProps,
} from "./lib/token-broker-sidecar.ts";
export { webIdentityTokenStatement } from "./lib/web-identity-token-policy.ts";
