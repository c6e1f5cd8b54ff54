import { type App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { readDemoContext } from "./demo-context.ts";
import { EcsDemoStack } from "./ecs-demo-stack.ts";
import { FederationStack } from "./federation-stack.ts";
import { LambdaDemoStack } from "./lambda-demo-stack.ts";

export interface DemoStacks {
  readonly federation: FederationStack;
  readonly lambdaDemo: LambdaDemoStack;
  readonly ecsDemo: EcsDemoStack;
}

/**
 * The deployable app: the account's outbound federation, then the two demo workloads. The stacks
 * are environment-agnostic (no lookups), so `cdk synth` needs no AWS account or network. Every
 * synthesis runs cdk-nag's AwsSolutions pack; an unacknowledged finding stops it.
 */
export function defineDemoApp(app: App): DemoStacks {
  const demo = readDemoContext(app);
  const stacks: DemoStacks = {
    federation: new FederationStack(app, "TokenBrokerFederation", {
      description: "token-broker: AWS IAM outbound web identity federation for this account",
    }),
    lambdaDemo: new LambdaDemoStack(app, "TokenBrokerLambdaDemo", {
      demo,
      description: "token-broker demo: Lambda function with the broker extension layer",
    }),
    ecsDemo: new EcsDemoStack(app, "TokenBrokerEcsDemo", {
      demo,
      description: "token-broker demo: Fargate service with the broker sidecar",
    }),
  };
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stacks;
}
