/**
 * The upstream chain (AWS STS identity → Google exchange) as one unit that `main.ts` loads on the
 * first token request: the AWS SDK and google-auth-library live only behind this module, so the
 * Lambda layer can ship it as its own file that is read and compiled only when it is needed.
 */
export { AwsIdentity, createStsClient } from "./aws-identity.ts";
export { GoogleExchange } from "./google-exchange.ts";
export { UpstreamCalls } from "./upstream-calls.ts";
