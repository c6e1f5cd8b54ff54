import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { impersonatedServiceAccount, startCloud } from "../test/cloud/cloud.ts";
import { listen, type RunningServer } from "../test/cloud/http.ts";
import { demoHandlerPath } from "../test/lambda-runtime/demo-function.ts";
import { bundleFunction } from "../test/lambda-runtime/function-bundle.ts";
import { RegistrationRecorder } from "../test/lambda-runtime/registration-recorder.ts";
import { createRuntimeApiApp } from "../test/lambda-runtime/runtime-api.ts";
import { freePort } from "../test/support/free-port.ts";
import {
  type Buildah,
  buildImage,
  copyLibraries,
  imageFiles,
  readlinkDeep,
  startBuildah,
} from "./buildah.ts";
import { type Architecture, type Flavour, flavours, layerFileName } from "./layer.ts";

/*
 * `npm run image:layer` (after `npm run build:layer`): the layer zips as OCI images and a function
 * image built on them, checked with buildah against the hermetic cloud. Run as root with buildah.
 * What it checks: docs/layer-build.md#checking-the-images-without-docker
 */

const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);
const require = createRequire(import.meta.url);
const architecture: Architecture = process.arch === "arm64" ? "arm64" : "x86_64";
const layerImage = (flavour: Flavour) => `localhost/token-broker-layer:${flavour}`;
const baseImage = "localhost/lambda-nodejs-base:24";
const functionImage = "localhost/token-broker-demo-function:smoke";
let passed = 0;

function check(condition: boolean, what: string, detail = ""): void {
  if (!condition) throw new Error(`layer image: ${what} failed${detail ? `: ${detail}` : ""}`);
  passed += 1;
  console.log(`ok ${passed} - ${what}${detail ? ` (${detail})` : ""}`);
}

async function build(buildah: Buildah, dockerfile: string, tag: string, context: string, args = {}) {
  const file = path.join(root, "scripts", "images", dockerfile);
  const seconds = await buildImage(buildah, { file, context, tag, format: "oci", args, timeoutMs: 300_000 });
  return `${seconds.toFixed(1)} s`;
}

/** The file modes (permission bits) of `files` inside an image. */
async function modesIn(buildah: Buildah, image: string, files: readonly string[]): Promise<number[]> {
  const container = await buildah(["from", "--pull=never", image]);
  try {
    const mountpoint = await buildah(["mount", container]);
    const modes = await Promise.all(
      files.map(async (file) => (await stat(path.join(mountpoint, file))).mode & 0o777),
    );
    await buildah(["umount", container]);
    return modes;
  } finally {
    await buildah(["rm", container]);
  }
}

/** The layer zip unpacked under `<context>/opt`; returns its files (as /opt paths) with their sizes. */
async function unpackLayer(zip: string, context: string): Promise<Map<string, number>> {
  const opt = path.join(context, "opt");
  await mkdir(opt, { recursive: true });
  await run("unzip", ["-q", zip, "-d", opt]);
  const entries = (await run("unzip", ["-Z1", zip])).stdout
    .split("\n")
    .filter((e) => e !== "" && !e.endsWith("/"));
  const files = new Map<string, number>();
  for (const entry of entries) files.set(`/opt/${entry}`, (await stat(path.join(opt, entry))).size);
  return files;
}

/**
 * What matters of public.ecr.aws/lambda/nodejs:24 to a function and its extensions: Node at
 * /var/lang/bin/node, a POSIX shell (the extension's launcher is a shell script), the runtime
 * interface client in /var/runtime, an entrypoint that takes the handler as its argument.
 */
async function assembleLambdaBase(buildah: Buildah, work: string): Promise<void> {
  const base = await buildah(["from", "scratch"]);
  await buildah(["copy", base, process.execPath, "/var/lang/bin/node"]);
  await copyLibraries(buildah, base, process.execPath);
  const shell = await readlinkDeep("/bin/sh");
  await buildah(["copy", base, shell, "/bin/sh"]);
  await copyLibraries(buildah, base, shell);
  const ric = path.dirname(require.resolve("aws-lambda-ric"));
  for (const part of ["index.mjs", "package.json", "rapid-client.node", "node_modules"]) {
    await buildah(["copy", base, path.join(ric, part), `/var/runtime/${part}`]);
  }
  await copyLibraries(buildah, base, path.join(ric, "rapid-client.node"));
  const entrypoint = path.join(work, "lambda-entrypoint.sh");
  await writeFile(
    entrypoint,
    '#!/bin/sh\nexport _HANDLER="$1"\nexec /var/lang/bin/node /var/runtime/index.mjs\n',
  );
  await buildah(["copy", "--chmod", "0755", base, entrypoint, "/lambda-entrypoint.sh"]);
  const environment = [
    "PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin",
    "LAMBDA_TASK_ROOT=/var/task",
    "LAMBDA_RUNTIME_DIR=/var/runtime",
  ].flatMap((pair) => ["--env", pair]);
  await buildah([
    "config",
    ...environment,
    "--workingdir",
    "/var/task",
    "--entrypoint",
    '["/lambda-entrypoint.sh"]',
    base,
  ]);
  await buildah(["commit", "--rm", base, baseImage]);
}

async function main(): Promise<void> {
  const zips = flavours.map((flavour) => ({
    flavour,
    zip: path.join(root, "dist", "layers", layerFileName(flavour, architecture)),
  }));
  for (const { zip } of zips) {
    await stat(zip).catch(() => {
      throw new Error(
        `layer image: ${path.relative(root, zip)} is missing; build the layers first: npm run build:layer`,
      );
    });
  }
  const session = await startBuildah("token-broker-layer-image");
  const { buildah } = session;
  const work = await mkdtemp("/var/tmp/token-broker-layer-context-");
  const cloud = await startCloud();
  let extension: ChildProcess | undefined;
  let api: RunningServer | undefined;
  try {
    let nodejsFiles = new Map<string, number>();
    for (const { flavour, zip } of zips) {
      const context = path.join(work, flavour);
      const expected = await unpackLayer(zip, context);
      const took = await build(buildah, "layer.Dockerfile", layerImage(flavour), context);
      const files = await imageFiles(buildah, layerImage(flavour));
      const same =
        files.size === expected.size && [...expected].every(([file, size]) => files.get(file) === size);
      check(
        same,
        `${layerImage(flavour)} holds exactly the ${flavour} layer zip's files under /opt`,
        `${files.size} files, ${took}`,
      );
      const [launcher] = await modesIn(buildah, layerImage(flavour), ["/opt/extensions/token-broker"]);
      check(
        launcher === 0o755,
        "its /opt/extensions/token-broker is executable",
        (launcher ?? 0).toString(8),
      );
      if (flavour === "nodejs") nodejsFiles = files;
    }

    await assembleLambdaBase(buildah, work);
    const functionContext = path.join(work, "function");
    await mkdir(functionContext);
    const bundle = await bundleFunction(demoHandlerPath);
    await run("cp", [path.join(bundle.taskRoot, "handler.mjs"), path.join(functionContext, "handler.mjs")]);
    await bundle.remove();
    const took = await build(buildah, "function.Dockerfile", functionImage, functionContext, {
      BASE_IMAGE: baseImage,
      LAYER_IMAGE: layerImage("nodejs"),
    });
    const baseFiles = await imageFiles(buildah, baseImage);
    const functionFiles = await imageFiles(buildah, functionImage);
    const added = [...functionFiles.keys()].filter((file) => !baseFiles.has(file)).sort();
    const expectedAdded = [...nodejsFiles.keys(), "/var/task/handler.mjs"].sort();
    check(
      JSON.stringify(added) === JSON.stringify(expectedAdded) &&
        [...nodejsFiles].every(([file, size]) => functionFiles.get(file) === size),
      "the function image is the base + the layer image's /opt (COPY --from) + the handler",
      `${added.length} files added, ${took}`,
    );

    // The extension as Lambda starts it from a container image, against a loopback Extensions API.
    const recorder = new RegistrationRecorder();
    api = await listen(createRuntimeApiApp(recorder));
    const metadataPort = await freePort();
    const container = await buildah(["from", "--pull=never", functionImage]);
    const env = {
      ...cloud.brokerEnv({ impersonate: true }),
      AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${api.port}`,
      AWS_LAMBDA_FUNCTION_NAME: "token-broker-demo",
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "128",
      AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand",
      BROKER_PORT: String(metadataPort),
      BROKER_OPS_HOST: "127.0.0.1",
      BROKER_OPS_PORT: String(await freePort()),
    };
    let output = "";
    extension = spawn(
      "buildah",
      [
        ...session.globalArgs,
        "run",
        "--isolation",
        "chroot",
        ...Object.entries(env).flatMap(([name, value]) => ["--env", `${name}=${value}`]),
        container,
        "--",
        "/opt/extensions/token-broker",
      ],
      { stdio: ["ignore", "pipe", "pipe"], detached: true, env: session.env },
    );
    for (const stream of [extension.stdout, extension.stderr])
      stream?.on("data", (chunk: Buffer) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => extension?.once("exit", resolve));
    const registered = await Promise.race([
      recorder.registered.then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 30_000)),
      exited.then(() => false),
    ]);
    check(
      registered,
      "the extension in the function image registers with the Extensions API",
      output.trim().split("\n")[0] ?? "",
    );
    const response = await fetch(
      `http://127.0.0.1:${metadataPort}/computeMetadata/v1/instance/service-accounts/default/token`,
      { headers: { "Metadata-Flavor": "Google" }, signal: AbortSignal.timeout(15_000) },
    );
    const token = (await response.json()) as { access_token?: string };
    const issued = cloud.ledger.resolveAccessToken(token.access_token ?? "");
    check(
      response.status === 200 &&
        issued?.principal.kind === "serviceAccount" &&
        issued.principal.email === impersonatedServiceAccount(cloud.world),
      "it serves a token for the function's service account on the metadata port",
      `HTTP ${response.status}`,
    );
    recorder.shutdown();
    const code = await Promise.race([
      exited,
      new Promise((resolve) => setTimeout(() => resolve("timeout"), 5_000)),
    ]);
    check(code === 0, "SHUTDOWN ends it cleanly", `exit ${String(code)}`);
    console.log(`${passed} passed, 0 failed`);
  } finally {
    if (extension?.pid !== undefined && extension.exitCode === null) {
      try {
        process.kill(-extension.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await api?.close();
    await cloud.close();
    await session.remove();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  console.log(`${passed} passed, 1 failed`);
  process.exitCode = 1;
});
