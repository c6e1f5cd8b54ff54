import { execFile } from "node:child_process";
import { lstat, mkdir, mkdtemp, readdir, readlink, rm } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

/**
 * Debian's buildah without a daemon, for the image scripts: chroot isolation, vfs storage in a
 * temporary folder of its own (removed by `remove()`), so nothing is left on the machine and
 * nothing is pulled: base images are assembled from this machine's files.
 */

const run = promisify(execFile);

export type Buildah = (args: readonly string[], timeout?: number) => Promise<string>;

export interface BuildahSession {
  readonly buildah: Buildah;
  /** Global options (storage) for commands started by hand, e.g. a long-running `buildah run`. */
  readonly globalArgs: readonly string[];
  /** The environment buildah runs with (its temporary files stay in the storage folder). */
  readonly env: NodeJS.ProcessEnv;
  readonly storage: string;
  remove(): Promise<void>;
}

export async function startBuildah(prefix: string): Promise<BuildahSession> {
  try {
    await run("buildah", ["--version"]);
  } catch {
    throw new Error("buildah is not installed; install it with: apt-get install -y buildah");
  }
  const storage = await mkdtemp(`/var/tmp/${prefix}-`);
  const globalArgs = ["--root", `${storage}/root`, "--runroot", `${storage}/run`, "--storage-driver", "vfs"];
  await mkdir(`${storage}/tmp`);
  const env = { ...process.env, TMPDIR: `${storage}/tmp` };
  const buildah: Buildah = async (args, timeout = 120_000) => {
    const { stdout } = await run("buildah", [...globalArgs, ...args], {
      timeout,
      maxBuffer: 64 * 1024 * 1024,
      env,
    });
    return stdout.trim();
  };
  return {
    buildah,
    globalArgs,
    env,
    storage,
    remove: async () => {
      await buildah(["rm", "--all"]).catch(() => "");
      await buildah(["rmi", "--all", "--force"]).catch(() => "");
      await rm(storage, { recursive: true, force: true });
    },
  };
}

export interface ImageBuild {
  /** The Dockerfile's path. */
  readonly file: string;
  readonly context: string;
  readonly tag: string;
  readonly format: "oci" | "docker";
  readonly args?: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
}

/** `buildah build` from local images only; resolves with the seconds it took. */
export async function buildImage(buildah: Buildah, build: ImageBuild): Promise<number> {
  const startedAt = Date.now();
  const buildArgs = Object.entries(build.args ?? {}).flatMap(([name, value]) => [
    "--build-arg",
    `${name}=${value}`,
  ]);
  await buildah(
    [
      "build",
      "--isolation",
      "chroot",
      "--format",
      build.format,
      "--pull=never",
      ...buildArgs,
      "--tag",
      build.tag,
      "--file",
      build.file,
      build.context,
    ],
    build.timeoutMs,
  );
  return (Date.now() - startedAt) / 1000;
}

/** Copies the shared libraries `binary` links (as ldd lists them) into the container, at the same paths. */
export async function copyLibraries(buildah: Buildah, container: string, binary: string): Promise<void> {
  const { stdout } = await run("ldd", [binary]);
  for (const match of stdout.matchAll(/(\/\S+) \(0x/g)) {
    const linked = match[1] ?? "";
    await buildah(["copy", container, await readlinkDeep(linked), linked]);
  }
}

/** Resolves a chain of symlinks (libc.so.6 -> libc-2.36.so) to the file to copy. */
export async function readlinkDeep(file: string): Promise<string> {
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
export async function imageFiles(buildah: Buildah, image: string): Promise<Map<string, number>> {
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
