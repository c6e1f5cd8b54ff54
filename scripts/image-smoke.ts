import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type Cloud, demoPrincipal, startCloud } from "../test/cloud/cloud.ts";
import { federatedPrincipal } from "../test/cloud/world.ts";
import { demoAppSettings } from "../test/lambda-runtime/demo-function.ts";
import { freePort } from "../test/support/free-port.ts";
import {
  type Buildah,
  buildImage,
  copyLibraries,
  imageFiles,
  readlinkDeep,
  startBuildah,
} from "./buildah.ts";

/*
 * `npm run image:smoke`: builds the sidecar and the ECS demo app images with buildah (no Docker
 * daemon, no registry) and runs them against the hermetic cloud. Run as root with buildah installed.
 * What it checks: docs/layer-build.md#checking-the-images-without-docker
 */

const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);
const images = {
  nodeBase: "localhost/token-broker-base:node24",
  buildBase: "localhost/token-broker-build:node24",
  sidecar: "localhost/token-broker:smoke",
  demoApp: "localhost/token-broker-demo-app:smoke",
};
let passed = 0;

function check(condition: boolean, what: string, detail = ""): void {
  if (!condition) throw new Error(`image smoke: ${what} failed${detail ? `: ${detail}` : ""}`);
  passed += 1;
  console.log(`ok ${passed} - ${what}${detail ? ` (${detail})` : ""}`);
}

interface ImageConfig {
  User: string;
  Entrypoint: string[];
  Healthcheck?: { Test: string[] };
}

interface Running {
  readonly process: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

async function main(): Promise<void> {
  const session = await startBuildah("token-broker-image-smoke");
  const { buildah, storage, globalArgs: global, env: buildahEnv } = session;
  const started: ChildProcess[] = [];
  const start = async (image: string, env: Record<string, string>, argv: readonly string[]) => {
    const container = await buildah(["from", "--pull=never", image]);
    const envArgs = Object.entries(env).flatMap(([name, value]) => ["--env", `${name}=${value}`]);
    const child = spawn(
      "buildah",
      [...global, "run", "--isolation", "chroot", ...envArgs, container, "--", ...argv],
      // A process group of its own: buildah's chroot helper and the containerized process join
      // it, so the whole container can be signalled, and nothing outlives the smoke test.
      { stdio: ["ignore", "pipe", "pipe"], detached: true, env: buildahEnv },
    );
    started.push(child);
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    return { container, running: { process: child, output: () => output, exited } satisfies Running };
  };
  const cloud = await startCloud();
  try {
    const nodeVersion = (await run(process.execPath, ["--version"])).stdout.trim();
    check(nodeVersion.startsWith("v24."), "the base carries Node 24", nodeVersion);
    await assembleNodeBase(buildah);
    await assembleBuildBase(buildah);

    // The context holds no bundle and no node_modules (.dockerignore): the build stage makes both.
    const buildSeconds = await build(buildah, "Dockerfile", images.sidecar, {
      BUILD_IMAGE: images.buildBase,
      BASE_IMAGE: images.nodeBase,
    });
    check(
      true,
      "buildah built the sidecar Dockerfile, npm ci and npm run build in its build stage (chroot isolation, vfs storage, no daemon)",
      `${buildSeconds} s`,
    );
    const config = await imageConfig(buildah, images.sidecar);
    check(config.User === "65532:65532", "runs as a numeric non-root user", config.User);
    check(
      JSON.stringify(config.Entrypoint) ===
        JSON.stringify(["node", "--max-semi-space-size=16", "/app/token-broker.mjs"]),
      "exec-form entrypoint, so SIGTERM reaches node itself",
      JSON.stringify(config.Entrypoint),
    );
    const probe = config.Healthcheck?.Test ?? [];
    check(
      JSON.stringify(probe) === JSON.stringify(["CMD", "node", "/app/token-broker.mjs", "--healthcheck"]),
      "HEALTHCHECK needs no shell",
      JSON.stringify(probe),
    );
    const baseFiles = await imageFiles(buildah, images.nodeBase);
    const sidecarFiles = await imageFiles(buildah, images.sidecar);
    const added = [...sidecarFiles.keys()].filter((file) => !baseFiles.has(file)).sort();
    check(
      JSON.stringify(added) === JSON.stringify(["/app/token-broker.mjs"]),
      "the Dockerfile adds only the bundle to the base",
      `${megabytes(total(sidecarFiles))} unpacked = ${megabytes(total(baseFiles))} base + ${megabytes(sidecarFiles.get("/app/token-broker.mjs") ?? 0)} bundle`,
    );
    const archive = path.join(storage, "sidecar.tar");
    await buildah(["push", "--compression-format", "gzip", images.sidecar, `oci-archive:${archive}`]);
    console.log(
      `# sidecar image as a registry stores it (gzip layers): ${megabytes((await stat(archive)).size)}`,
    );

    const [metadataPort, opsPort] = [await freePort(), await freePort()];
    const startedAt = Date.now();
    const { container, running: broker } = await start(
      images.sidecar,
      {
        ...cloud.brokerEnv({ impersonate: false }),
        BROKER_PORT: String(metadataPort),
        BROKER_OPS_PORT: String(opsPort),
      },
      config.Entrypoint, // as a container runtime would start it
    );
    const health = await poll(
      () =>
        fetch(`http://127.0.0.1:${opsPort}/healthz`, { signal: AbortSignal.timeout(1_000) }).then(
          (r) => r.status,
        ),
      (status) => status === 200,
    );
    check(
      health === 200,
      "/healthz answers 200 from the image",
      health === 200
        ? `${Date.now() - startedAt} ms after start`
        : `broker said: ${firstLines(broker.output())}`,
    );
    await buildah([
      "run",
      "--isolation",
      "chroot",
      "--env",
      `BROKER_OPS_PORT=${opsPort}`,
      container,
      "--",
      ...probe.slice(1),
    ]);
    check(true, "the image's HEALTHCHECK command exits 0");
    await checkToken(cloud, metadataPort);
    const pid = await containerPid("/app/token-broker.mjs", `BROKER_PORT=${metadataPort}`);
    const uid = /^Uid:\s+(\d+)/m.exec(await readFile(`/proc/${pid}/status`, "utf8"))?.[1];
    check(uid === "65532", "the broker process runs as uid 65532", `pid ${pid}`);

    await checkDemoApp(buildah, start, cloud, metadataPort);

    const stopping = Date.now();
    process.kill(pid, "SIGTERM");
    const code = await Promise.race([broker.exited, sleep(5_000).then(() => "timeout" as const)]);
    check(
      code === 0 && broker.output().includes("token-broker stopped"),
      "SIGTERM stops the broker cleanly",
      `exit ${code} in ${Date.now() - stopping} ms`,
    );
    console.log(`${passed} passed, 0 failed`);
  } finally {
    for (const child of started) signalGroup(child, "SIGKILL");
    await cloud.close();
    await session.remove();
  }
}

/** Node 24 and the libraries it links, where the distroless nodejs24 image keeps it. */
async function assembleNodeBase(buildah: Buildah): Promise<void> {
  const base = await buildah(["from", "scratch"]);
  await buildah(["copy", base, process.execPath, "/nodejs/bin/node"]);
  await copyLibraries(buildah, base, process.execPath);
  await buildah(["config", "--env", "PATH=/nodejs/bin:/usr/bin:/bin", "--user", "65532:65532", base]);
  await buildah(["commit", "--rm", base, images.nodeBase]);
}

/**
 * The build stages need what node:24-bookworm-slim offers them: a shell for `RUN` and npm
 * (this machine's npm, a pure JavaScript package, run by Node 24). npm fetches from the npm
 * registry, the one registry this machine reaches.
 */
async function assembleBuildBase(buildah: Buildah): Promise<void> {
  const base = await buildah(["from", "--pull=never", images.nodeBase]);
  const npmCli = (await run("sh", ["-c", 'readlink -f "$(command -v npm)"'])).stdout.trim();
  const npmPackage = path.resolve(path.dirname(npmCli), "..");
  const shell = await readlinkDeep("/bin/sh");
  await buildah(["copy", base, shell, "/bin/sh"]);
  await copyLibraries(buildah, base, shell);
  await buildah(["copy", base, npmPackage, "/usr/local/lib/node_modules/npm"]);
  const wrapper = path.join(await mkdtemp("/var/tmp/token-broker-npm-"), "npm");
  await writeFile(wrapper, '#!/bin/sh\nexec node /usr/local/lib/node_modules/npm/bin/npm-cli.js "$@"\n', {
    mode: 0o755,
  });
  await buildah(["copy", "--chmod", "0755", base, wrapper, "/usr/local/bin/npm"]);
  await rm(path.dirname(wrapper), { recursive: true, force: true });
  // The registry may be reached through a TLS proxy whose CA only this machine trusts: the build
  // stage trusts what the machine's npm trusts, as a real builder image would be configured to.
  const cafile = (await run("npm", ["config", "get", "cafile"])).stdout.trim();
  const trust: string[] = [];
  if (cafile.startsWith("/")) {
    await buildah(["copy", base, cafile, "/etc/ssl/certs/ca-certificates.crt"]);
    trust.push("--env", "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt");
  }
  const environment = ["PATH=/usr/local/bin:/nodejs/bin:/bin", "HOME=/tmp"].flatMap((pair) => [
    "--env",
    pair,
  ]);
  await buildah(["config", ...environment, ...trust, "--user", "0:0", base]);
  await buildah(["commit", "--rm", base, images.buildBase]);
}

async function build(
  buildah: Buildah,
  dockerfile: string,
  tag: string,
  args: Record<string, string>,
): Promise<string> {
  const file = path.join(root, dockerfile);
  const seconds = await buildImage(buildah, {
    file,
    context: root,
    tag,
    format: "docker",
    args,
    timeoutMs: 600_000,
  });
  return seconds.toFixed(1);
}

async function imageConfig(buildah: Buildah, image: string): Promise<ImageConfig> {
  const inspected = JSON.parse(await buildah(["inspect", "--type", "image", image])) as {
    Docker: { config: ImageConfig };
  };
  return inspected.Docker.config;
}

async function checkToken(cloud: Cloud, metadataPort: number): Promise<void> {
  const response = await fetch(
    `http://127.0.0.1:${metadataPort}/computeMetadata/v1/instance/service-accounts/default/token`,
    { headers: { "Metadata-Flavor": "Google" }, signal: AbortSignal.timeout(10_000) },
  );
  const token = (await response.json()) as { access_token: string; expires_in: number; token_type: string };
  const issued = cloud.ledger.resolveAccessToken(token.access_token);
  const expected = federatedPrincipal(cloud.world, demoPrincipal(cloud.world).roleArn);
  check(
    response.status === 200 &&
      token.token_type === "Bearer" &&
      token.expires_in > 300 &&
      issued?.principal.kind === "federated" &&
      issued.principal.principal === expected,
    "a token is served on the metadata port, issued by Google STS to the demo role's principal",
    `expires_in ${token.expires_in}`,
  );
}

/** The ECS demo image beside the running sidecar, as the task definition wires them. */
async function checkDemoApp(
  buildah: Buildah,
  start: (
    image: string,
    env: Record<string, string>,
    argv: readonly string[],
  ) => Promise<{ running: Running }>,
  cloud: Cloud,
  metadataPort: number,
): Promise<void> {
  const buildSeconds = await build(buildah, "client-demo/Dockerfile", images.demoApp, {
    BUILD_IMAGE: images.buildBase,
    BASE_IMAGE: images.nodeBase,
  });
  const config = await imageConfig(buildah, images.demoApp);
  console.log(`# demo app image: ${megabytes(total(await imageFiles(buildah, images.demoApp)))} unpacked`);
  check(
    config.User === "65532:65532" && JSON.stringify(config.Entrypoint) === '["node","/app/ecs-app.mjs"]',
    "buildah built the ECS demo app image (npm and its bundle in the build stage), non-root, exec form",
    `${buildSeconds} s`,
  );
  const { world } = cloud;
  const endpoint = `127.0.0.1:${metadataPort}`;
  const { running: app } = await start(
    images.demoApp,
    {
      ...demoAppSettings(cloud),
      GCE_METADATA_HOST: endpoint,
      GCE_METADATA_IP: endpoint,
      GCE_METADATA_ROOT: endpoint,
      METADATA_SERVER_DETECTION: "assume-present",
      GREETING_INTERVAL_SECONDS: "60",
    },
    config.Entrypoint,
  );
  // The app logs one JSON line per run, after both writes (or its error): wait for that line.
  const line = await poll(
    async () =>
      app
        .output()
        .split("\n")
        .slice(0, -1) // complete lines only
        .find((text) => text.includes('"requestId"')),
    (found) => found !== undefined,
    600, // a minute: loading the Google SDKs from source is slow on a busy machine
  );
  const objects = cloud.gcs.objects(world.grantedBucket);
  const rows = cloud.bigquery.rows(world.dataset, world.table);
  const logged =
    line === undefined ? undefined : (JSON.parse(line) as { object?: string; row?: { message: string } });
  check(
    objects.length === 1 &&
      logged?.object === `gs://${world.grantedBucket}/${objects[0]?.name}` &&
      rows.length === 1 &&
      rows[0]?.json.message === logged.row?.message,
    "the demo app wrote its object and its row with the sidecar's token",
    logged?.object ?? `app said: ${firstLines(app.output())}`,
  );
  // As ECS stops a task: SIGTERM to the container's process, which ends after the run in progress.
  process.kill(await containerPid("/app/ecs-app.mjs", `GCE_METADATA_HOST=${endpoint}`), "SIGTERM");
  const code = await Promise.race([app.exited, sleep(5_000).then(() => "timeout" as const)]);
  check(
    code === 0 && app.output().includes('"stopped"'),
    "SIGTERM stops the demo app after its run",
    `exit ${code}`,
  );
}

/** Signals every process of a container started by `start` (its own process group). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group has already ended.
  }
}

function total(files: Map<string, number>): number {
  return [...files.values()].reduce((sum, size) => sum + size, 0);
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function firstLines(text: string): string {
  return text.trim().split("\n").slice(0, 4).join(" | ");
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Calls `probe` every 100 ms until `done`, at most `attempts` times; the last value either way. */
async function poll<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  attempts = 150,
): Promise<T | undefined> {
  let value: T | undefined;
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    value = await probe().catch(() => undefined);
    if (value !== undefined && done(value)) return value;
    await sleep(100);
  }
  return value;
}

/** The pid of a node process this smoke test started in a container, by its script and one variable. */
async function containerPid(script: string, variable: string): Promise<number> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const commandLine = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      if (!commandLine[0]?.endsWith("node") || !commandLine.slice(1).includes(script)) continue;
      const environ = (await readFile(`/proc/${entry}/environ`, "utf8")).split("\0");
      if (environ.includes(variable)) return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  throw new Error(`image smoke: no process runs ${script} with ${variable}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  console.log(`${passed} passed, 1 failed`);
  process.exitCode = 1;
});
