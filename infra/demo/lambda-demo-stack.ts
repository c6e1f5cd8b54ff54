import path from "node:path";
import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import { Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Architecture, Runtime } from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { LambdaTokenBroker } from "../constructs/lambda-token-broker.ts";
import { TokenBrokerLayer } from "../constructs/token-broker-layer.ts";
import {
  type DemoContext,
  demoBrokerSettings,
  demoFunctionNames,
  demoRoleNames,
  demoWorkloadEnvironment,
} from "./demo-context.ts";

export interface LambdaDemoStackProps extends StackProps {
  readonly demo: DemoContext;
}

const repositoryRoot = path.resolve(import.meta.dirname, "..", "..");

/**
 * The walk-through's functions (write an object to the bucket and a row to the table) with no
 * auth code in them: the broker layer hands their Google SDKs their tokens. Two functions share
 * one role, under fixed names: Google grants the writer by name, so the reader is refused.
 */
export class LambdaDemoStack extends Stack {
  /** The writer, the function Google grants (infra/gcp's `lambda_function_names`). */
  readonly function: NodejsFunction;
  /** The same code under the same role, granted nothing by name: Google refuses its writes. */
  readonly reader: NodejsFunction;

  constructor(scope: Construct, id: string, props: LambdaDemoStackProps) {
    super(scope, id, props);
    const logGroup = new LogGroup(this, "Logs", {
      retention: RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // A role of our own instead of the AWSLambdaBasicExecutionRole managed policy: it may write
    // to this log group only, and its fixed name is what infra/gcp pins.
    const role = new Role(this, "Role", {
      roleName: demoRoleNames.lambda,
      assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
      description: "token-broker demo functions: write their logs and mint JWTs for Google",
    });
    logGroup.grantWrite(role);
    // The demo owns its layer versions, so `cdk destroy` removes them too.
    const layer = new TokenBrokerLayer(this, "TokenBrokerLayer", {
      layersDirectory: props.demo.layersDirectory,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const demoFunction = (construct: string, functionName: string) => {
      const fn = new NodejsFunction(this, construct, {
        functionName,
        entry: path.join(repositoryRoot, "client-demo", "handler.ts"),
        handler: "handler",
        projectRoot: repositoryRoot,
        depsLockFilePath: path.join(repositoryRoot, "package-lock.json"),
        runtime: Runtime.NODEJS_24_X,
        architecture: Architecture.ARM_64,
        memorySize: 512,
        timeout: Duration.seconds(30),
        role,
        logGroup,
        environment: demoWorkloadEnvironment(props.demo),
        bundling: {
          // esbuild is a dev dependency, so bundling needs neither Docker nor a network.
          forceDockerBundling: false,
          format: OutputFormat.ESM,
          target: "node24",
          // Unminified, so stack traces in the logs read without a source map.
          minify: false,
          sourceMap: false,
          // Some Google SDK dependencies still call require(); give the ESM bundle one.
          banner:
            "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        },
      });
      new LambdaTokenBroker(this, `${construct}TokenBroker`, {
        function: fn,
        layer,
        broker: demoBrokerSettings(props.demo),
      });
      return fn;
    };
    this.function = demoFunction("Function", demoFunctionNames.writer);
    this.reader = demoFunction("Reader", demoFunctionNames.reader);

    new CfnOutput(this, "FunctionName", {
      description: "The writer, granted by name",
      value: this.function.functionName,
    });
    new CfnOutput(this, "ReaderFunctionName", {
      description: "The reader: the writer's role, no grant of its own",
      value: this.reader.functionName,
    });
    new CfnOutput(this, "LambdaFunctionNames", {
      description: "infra/gcp's lambda_function_names: the functions Google grants one by one",
      value: JSON.stringify([demoFunctionNames.writer]),
    });
    new CfnOutput(this, "RoleArn", { value: role.roleArn });
    new CfnOutput(this, "LogGroupName", { value: logGroup.logGroupName });
  }
}
