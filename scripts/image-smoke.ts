import { type ChildProcess, execFile, spawn } from "node:child_process";
import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { demoPrincipal, startCloud } from "../test/cloud/cloud.ts";
import { federatedPrincipal } from "../test/cloud/world.ts";

/**
 * Builds the sidecar image from the root Dockerfile without a Docker daemon and runs the broker
 * from it against the hermetic cloud. No registry is reachable, so the base image is assembled
 * here: Node 24 (the binary running this script, from the `node` npm package) plus the shared
 * libraries it links, at the distroless path /nodejs/bin/node, as the default base has it.
 *
 *   buildah (Debian's), chroot isolation, vfs storage in a temporary folder removed at the end.
 *
 * Checks: the image config (non-root numeric user, exec-form entrypoint, shell-free health
 * check), that the Dockerfile adds nothing but the bundle, /healthz, the image's own
 * HEALTHCHECK command, a token served on the metadata port and issued by the hermetic Google
 * STS to the demo role's federated principal, the process uid, and a clean exit on SIGTERM.
 *
 * Run: `node scripts/image-smoke.ts` (as root, with `apt-get install -y buildah`).
 */

const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);
const imageName = "localhost/token-broker:smoke";
const baseName = "localhost/token-broker-base:node24";
let passed = 0;

function check(condition: boolean, what: string, detail = ""): void {
  if (!condition) throw new Error(`image smoke: ${what} failed${detail ? `: ${detail}` : ""}`);
  passed += 1;
  console.log(`ok ${passed} - ${what}${detail ? ` (${detail})` : ""}`);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

interface ImageConfig {
  User: string;
  Entrypoint: string[];
  Cmd: string[] | null;
  Env: string[];
  Healthcheck?: { Test: string[] };
}

async function main(): Promise<void> {
  try {
    await run("buildah", ["--version"]);
  } catch {
    throw new Error("image smoke: buildah is not installed; install it with: apt-get install -y buildah");
  }
  const storage = await mkdtemp("/var/tmp/token-broker-image-smoke-");
  const buildah = async (args: readonly string[], timeout = 120_000) => {
    const global = ["--root", `${storage}/root`, "--runroot", `${storage}/run`, "--storage-driver", "vfs"];
    const { stdout } = await run("buildah", [...global, ...args], { timeout, maxBuffer: 64 * 1024 * 1024 });
    return stdout.trim();
  };
  const started: ChildProcess[] = [];
  const cloud = await startCloud();
  try {
    // The bundle the Dockerfile copies, built from the current sources.
    await run(process.execPath, [path.join(root, "scripts", "build.ts")], { cwd: root, timeout: 120_000 });

    const nodeVersion = (await run(process.execPath, ["--version"])).stdout.trim();
    check(nodeVersion.startsWith("v24."), "the base carries Node 24", nodeVersion);
    const base = await buildah(["from", "scratch"]);
    await buildah(["copy", base, process.execPath, "/nodejs/bin/node"]);
    const { stdout: ldd } = await run("ldd", [process.execPath]);
    for (const library of ldd.matchAll(/(\/\S+) \(0x/g)) {
      const linked = library[1] ?? "";
      await buildah(["copy", base, await readlinkDeep(linked), linked]);
    }
    await buildah(["config", "--env", "PATH=/nodejs/bin:/usr/bin:/bin", "--user", "65532:65532", base]);
    await buildah(["commit", "--rm", base, baseName]);

    const buildStarted = Date.now();
    await buildah(
      [
        "build",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "--pull=never",
        "--build-arg",
        `BASE_IMAGE=${baseName}`,
        "--tag",
        imageName,
        "--file",
        path.join(root, "Dockerfile"),
        root,
      ],
      300_000,
    );
    const buildSeconds = ((Date.now() - buildStarted) / 1000).toFixed(1);
    check(
      true,
      "buildah built the Dockerfile (chroot isolation, vfs storage, no daemon)",
      `${buildSeconds} s`,
    );

    const inspected = JSON.parse(await buildah(["inspect", "--type", "image", imageName])) as {
      Docker: { config: ImageConfig };
    };
    const config = inspected.Docker.config;
    check(config.User === "65532:65532", "runs as a numeric non-root user", config.User);
    check(
      JSON.stringify(config.Entrypoint) === JSON.stringify(["node", "/app/token-broker.mjs"]),
      "exec-form entrypoint, so SIGTERM reaches node itself",
      JSON.stringify(config.Entrypoint),
    );
    const probe = config.Healthcheck?.Test ?? [];
    check(
      JSON.stringify(probe) === JSON.stringify(["CMD", "node", "/app/token-broker.mjs", "--healthcheck"]),
      "HEALTHCHECK needs no shell",
      JSON.stringify(probe),
    );

    const baseFiles = await imageFiles(buildah, baseName);
    const smokeFiles = await imageFiles(buildah, imageName);
    const added = [...smokeFiles.keys()].filter((file) => !baseFiles.has(file)).sort();
    const megabytes = (files: Map<string, number>) =>
      ([...files.values()].reduce((sum, size) => sum + size, 0) / 1e6).toFixed(1);
    check(
      JSON.stringify(added) === JSON.stringify(["/app/token-broker.mjs"]),
      "the Dockerfile adds only the bundle to the base",
      `${megabytes(smokeFiles)} MB unpacked = ${megabytes(baseFiles)} MB base + ${((smokeFiles.get("/app/token-broker.mjs") ?? 0) / 1e6).toFixed(1)} MB bundle`,
    );
    const archive = path.join(storage, "image.tar");
    await buildah(["push", "--compression-format", "gzip", imageName, `oci-archive:${archive}`]);
    console.log(
      `# image as a registry stores it (gzip layers): ${((await stat(archive)).size / 1e6).toFixed(1)} MB`,
    );

    const [metadataPort, opsPort] = [await freePort(), await freePort()];
    const container = await buildah(["from", "--pull=never", imageName]);
    const environment = {
      ...cloud.brokerEnv({ impersonate: false }),
      BROKER_PORT: String(metadataPort),
      BROKER_OPS_PORT: String(opsPort),
    };
    const envArgs = Object.entries(environment).flatMap(([name, value]) => ["--env", `${name}=${value}`]);
    const global = ["--root", `${storage}/root`, "--runroot", `${storage}/run`, "--storage-driver", "vfs"];
    const startedAt = Date.now();
    // The image's own entrypoint, as a container runtime would start it.
    const broker = spawn(
      "buildah",
      [...global, "run", "--isolation", "chroot", ...envArgs, container, "--", ...config.Entrypoint],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    started.push(broker);
    let output = "";
    broker.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    broker.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => broker.once("exit", (code) => resolve(code)));

    let health = 0;
    for (let attempt = 0; attempt < 150 && health !== 200; attempt += 1) {
      health = await fetch(`http://127.0.0.1:${opsPort}/healthz`, { signal: AbortSignal.timeout(1_000) })
        .then((response) => response.status)
        .catch(() => 0);
      if (health !== 200) await sleep(100);
    }
    check(
      health === 200,
      "/healthz answers 200 from the image",
      health === 200
        ? `${Date.now() - startedAt} ms after start`
        : `broker said: ${output.trim().split("\n").slice(0, 4).join(" | ")}`,
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

    const pid = await brokerPid(String(metadataPort));
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
    check(uid === "65532", "the broker process runs as uid 65532", `pid ${pid}`);

    const stopping = Date.now();
    process.kill(pid, "SIGTERM");
    const code = await Promise.race([exited, sleep(5_000).then(() => "timeout" as const)]);
    check(
      code === 0 && output.includes("token-broker stopped"),
      "SIGTERM stops the broker cleanly",
      `exit ${code} in ${Date.now() - stopping} ms`,
    );
    console.log(`${passed} passed, 0 failed`);
  } finally {
    for (const child of started) if (child.exitCode === null) child.kill("SIGKILL");
    await cloud.close();
    await buildah(["rm", "--all"]).catch(() => "");
    await buildah(["rmi", "--all", "--force"]).catch(() => "");
    await rm(storage, { recursive: true, force: true });
  }
}

/** Resolves a chain of symlinks (libc.so.6 -> libc-2.36.so) to the file to copy. */
async function readlinkDeep(file: string): Promise<string> {
  let current = file;
  for (let hops = 0; hops < 10; hops += 1) {
    try {
      current = path.resolve(path.dirname(current), await readlink(current));
    } catch {
      return current;
    }
  }
  return current;
}

/** Every file of an image with its size, read from a mounted working container. */
async function imageFiles(
  buildah: (args: readonly string[]) => Promise<string>,
  image: string,
): Promise<Map<string, number>> {
  const container = await buildah(["from", "--pull=never", image]);
  try {
    const mountpoint = await buildah(["mount", container]);
    const files = new Map<string, number>();
    await listFiles(mountpoint, "", files);
    await buildah(["umount", container]);
    return files;
  } finally {
    await buildah(["rm", container]);
  }
}

async function listFiles(directory: string, prefix: string, files: Map<string, number>): Promise<void> {
  for (const entry of await readdir(directory, { withFileTypes: true })) {
    const relative = `${prefix}/${entry.name}`;
    const full = path.join(directory, entry.name);
    if (entry.isDirectory()) await listFiles(full, relative, files);
    else files.set(relative, (await lstat(full)).size);
  }
}

/** The pid of the broker that `buildah run` started for this smoke test (matched by its port). */
async function brokerPid(metadataPort: string): Promise<number> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const commandLine = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      if (!commandLine[0]?.endsWith("node") || commandLine[1] !== "/app/token-broker.mjs") continue;
      const environ = (await readFile(`/proc/${entry}/environ`, "utf8")).split("\0");
      if (environ.includes(`BROKER_PORT=${metadataPort}`)) return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  throw new Error(`image smoke: no broker process listens on ${metadataPort}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  console.log(`${passed} passed, 1 failed`);
  process.exitCode = 1;
});
