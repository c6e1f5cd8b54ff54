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
  type SigningAlgorithm,
} from "./constructs/broker-settings.ts";
export { LambdaTokenBroker, type LambdaTokenBrokerProps } from "./constructs/lambda-token-broker.ts";
export { OutboundFederation, type OutboundFederationProps } from "./constructs/outbound-federation.ts";
export { type ProviderAudienceParts, providerAudience } from "./constructs/provider-audience.ts";
export {
  type LayerFlavour,
  layerZipName,
  TokenBrokerLayer,
  type TokenBrokerLayerProps,
} from "./constructs/token-broker-layer.ts";
export {
  brokerOpsPort,
  TokenBrokerSidecar,
  type TokenBrokerSidecarProps,
} from "./constructs/token-broker-sidecar.ts";
export {
  tagWebIdentityTokenStatement,
  webIdentityTokenStatement,
} from "./constructs/web-identity-token-policy.ts";
