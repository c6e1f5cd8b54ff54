/**
 * `token-broker/cdk`: the constructs as a library for CDK apps, e.g. `import { LambdaTokenBroker }
 * from "token-broker/cdk"`; `npm run build:cdk` compiles it to dist/cdk (an app's node runs no TypeScript).
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
