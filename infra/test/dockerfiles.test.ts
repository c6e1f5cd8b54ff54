import { readFileSync } from "node:fs";
import path from "node:path";
import { Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { ContainerImage, FargateTaskDefinition } from "aws-cdk-lib/aws-ecs";
import { describe, expect, it } from "vitest";
import { TokenBrokerSidecar } from "../constructs/token-broker-sidecar.ts";
import { testApp } from "./synth.ts";

/*
 * A static reading of the Dockerfiles, so `npm test` guards their contract on any machine;
 * scripts/image-smoke.ts builds and runs them for real where buildah and root are available.
 */

const repositoryRoot = path.resolve(import.meta.dirname, "..", "..");

interface Instruction {
  readonly keyword: string;
  readonly argument: string;
}

/** Instructions with continuation lines joined and comments dropped. */
function instructions(file: string): Instruction[] {
  const text = readFileSync(path.join(repositoryRoot, file), "utf8").replace(/\\\n\s*/g, "");
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const [keyword = "", ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), argument: rest.join(" ") };
    });
}

/** The instructions of the last stage, the one that becomes the image. */
function finalStage(file: string): Instruction[] {
  const all = instructions(file);
  const lastFrom = all.map((instruction) => instruction.keyword).lastIndexOf("FROM");
  return all.slice(lastFrom);
}

function argument(stage: Instruction[], keyword: string): string[] {
  return stage
    .filter((instruction) => instruction.keyword === keyword)
    .map((instruction) => instruction.argument);
}

const digest = "@sha256:[0-9a-f]{64}";

describe.each(["Dockerfile", "client-demo/Dockerfile"])("%s", (file) => {
  it("takes its bases as build arguments, defaulting to Node 24 images pinned by digest", () => {
    const defaults = Object.fromEntries(
      argument(instructions(file), "ARG").map((declaration) => declaration.split("=", 2)),
    );
    expect(defaults.BASE_IMAGE).toMatch(
      new RegExp(`^gcr\\.io/distroless/nodejs24-debian12:nonroot${digest}$`),
    );
    expect(defaults.BUILD_IMAGE).toMatch(new RegExp(`^node:24-bookworm-slim${digest}$`));
    // Both files build from the same two bases, so one digest refresh covers them.
    expect(defaults).toEqual(
      Object.fromEntries(
        argument(instructions("Dockerfile"), "ARG").map((declaration) => declaration.split("=", 2)),
      ),
    );
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Dockerfile variables, compared verbatim
    const [build, runtime] = ["${BUILD_IMAGE}", "${BASE_IMAGE}"];
    expect(argument(instructions(file), "FROM")).toEqual([`${build} AS build`, runtime]);
  });

  it("runs as a numeric non-root user, with an exec-form entrypoint", () => {
    const stage = finalStage(file);
    expect(argument(stage, "USER")).toEqual(["65532:65532"]);
    const [entrypoint = ""] = argument(stage, "ENTRYPOINT");
    expect(JSON.parse(entrypoint)[0]).toBe("node");
  });

  it("runs nothing at build time in the image itself and fetches nothing with ADD", () => {
    expect(argument(finalStage(file), "RUN")).toEqual([]);
    expect(argument(instructions(file), "ADD")).toEqual([]);
  });
});

describe("the sidecar Dockerfile", () => {
  it("builds the bundle from the locked dependencies and the sources, so a clone needs no prior build", () => {
    const stages = instructions("Dockerfile");
    const build = stages.slice(0, stages.map((instruction) => instruction.keyword).lastIndexOf("FROM"));
    expect(argument(build, "RUN")).toEqual(["npm ci --ignore-scripts --no-audit --no-fund", "npm run build"]);
    expect(argument(build, "COPY")).toEqual([
      "package.json package-lock.json ./",
      "broker/ ./broker/",
      "scripts/build.ts scripts/bundle-options.ts scripts/fetch-globals.ts ./scripts/",
    ]);
    // Whatever the copied build scripts import from scripts/ is copied too.
    const copied = ["build.ts", "bundle-options.ts", "fetch-globals.ts"];
    for (const name of copied) {
      const text = readFileSync(path.join(repositoryRoot, "scripts", name), "utf8");
      for (const [, imported] of text.matchAll(/"\.\/([\w-]+\.ts)"/g)) expect(copied).toContain(imported);
    }
  });

  it("copies the bundle alone into the image", () => {
    expect(argument(finalStage("Dockerfile"), "COPY")).toEqual([
      "--from=build /src/dist/token-broker.mjs /app/token-broker.mjs",
    ]);
  });

  it("declares the same shell-free health check as the ECS task definition", () => {
    const [healthcheck = ""] = argument(finalStage("Dockerfile"), "HEALTHCHECK");
    const command = JSON.parse(healthcheck.slice(healthcheck.indexOf("CMD ") + 4)) as string[];
    const stack = new Stack(testApp(), "Health");
    new TokenBrokerSidecar(stack, "Broker", {
      taskDefinition: new FargateTaskDefinition(stack, "Task"),
      broker: {
        audience:
          "//iam.googleapis.com/projects/987654321098/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider",
      },
      image: ContainerImage.fromRegistry("registry.example/token-broker:1.0.0"),
    });
    const [task] = Object.values(Template.fromStack(stack).findResources("AWS::ECS::TaskDefinition"));
    const [container] = (task?.Properties.ContainerDefinitions ?? []) as {
      HealthCheck: { Command: string[] };
    }[];
    expect(container?.HealthCheck.Command).toEqual(["CMD", ...command]);
    // The entrypoint runs the same file with the same Node (V8 flags between them).
    const entrypoint = JSON.parse(argument(finalStage("Dockerfile"), "ENTRYPOINT")[0] ?? "[]") as string[];
    expect([entrypoint[0], entrypoint.at(-1)]).toEqual(command.slice(0, 2));
  });
});

describe("the demo app Dockerfile", () => {
  it("bundles the app with the locked dependencies, and copies the bundle alone into the image", () => {
    const stages = instructions("client-demo/Dockerfile");
    const build = stages.slice(0, stages.map((instruction) => instruction.keyword).lastIndexOf("FROM"));
    expect(argument(build, "RUN")).toEqual([
      "npm ci --ignore-scripts --no-audit --no-fund",
      "node scripts/build-demo-app.ts",
    ]);
    expect(argument(finalStage("client-demo/Dockerfile"), "COPY")).toEqual([
      "--from=build /src/dist/ecs-app.mjs /app/ecs-app.mjs",
    ]);
    const script = readFileSync(path.join(repositoryRoot, "scripts", "build-demo-app.ts"), "utf8");
    expect([...script.matchAll(/"\.\/([\w-]+\.ts)"/g)].map(([, imported]) => imported)).toEqual([
      "bundle-options.ts",
    ]);
  });
});

describe(".dockerignore", () => {
  it("lets in exactly what the Dockerfiles copy from the context", () => {
    const patterns = readFileSync(path.join(repositoryRoot, ".dockerignore"), "utf8")
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("#"));
    expect(patterns).toEqual([
      "*",
      "!package.json",
      "!package-lock.json",
      "!broker/",
      "!scripts/build.ts",
      "!scripts/bundle-options.ts",
      "!scripts/fetch-globals.ts",
      "!scripts/build-demo-app.ts",
      "!client-demo/",
      "**/*.test.ts",
    ]);
    expect(argument(instructions("client-demo/Dockerfile"), "COPY")).toEqual([
      "package.json package-lock.json ./",
      "client-demo/*.ts ./client-demo/",
      "scripts/build-demo-app.ts scripts/bundle-options.ts ./scripts/",
      "--from=build /src/dist/ecs-app.mjs /app/ecs-app.mjs",
    ]);
  });
});
