import { execFile } from "node:child_process";
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  utimes,
} from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";
import { brokerBundleOptions } from "./bundle-options.ts";
import { trainCodeCache } from "./layer-code-cache.ts";
import { buildSplit, lazyParts } from "./layer-split.ts";

/**
 * Builds the Lambda extension layers: the zip's files and why each is there are in
 * docs/layer-build.md ("What a layer zip holds"). `nodejs` runs on the function's own Node;
 * `standalone` carries its own Node, for functions on any runtime.
 */

export const extensionName = "token-broker";
export const flavours = ["nodejs", "standalone"] as const;
export const architectures = ["x86_64", "arm64"] as const;
export type Flavour = (typeof flavours)[number];
export type Architecture = (typeof architectures)[number];

export interface Layer {
  readonly flavour: Flavour;
  readonly architecture: Architecture;
  readonly zipPath: string;
  readonly compressedBytes: number;
  readonly unpackedBytes: number;
}

export interface BuildLayersOptions {
  readonly outDir?: string;
  readonly flavours?: readonly Flavour[];
  readonly architectures?: readonly Architecture[];
  /** Told one line per step (bundling, fetching Node, training, zipping). @default - silent */
  readonly progress?: (line: string) => void;
}

type Progress = (line: string) => void;

const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);
/** Fixed mtime for every file in the zip, so the same inputs give the same layer bytes. */
const fixedMtime = new Date("2020-01-01T00:00:00Z");

/** Node's npm packages name the architectures the way Node does; Lambda says x86_64. */
const nodePackageArch: Record<Architecture, string> = { x86_64: "x64", arm64: "arm64" };

interface ExtensionCode {
  /** Each file of the extension's code, by its name in `token-broker/`. */
  readonly files: ReadonlyMap<string, string>;
}

/** The extension, its lazy parts and its loader, CommonJS (see the loader for why), no node_modules. */
async function bundleExtension(dir: string): Promise<ExtensionCode> {
  // Minified: V8 keeps each file's source in the heap for as long as the extension runs.
  // keepNames: functions and classes keep their names, which error logs report (pino's `type`).
  const cjs = {
    ...brokerBundleOptions,
    format: "cjs",
    banner: {},
    minifyWhitespace: true,
    minifySyntax: true,
    minifyIdentifiers: true,
    keepNames: true,
  } as const;
  await buildSplit(root, cjs, join(root, "lambda-extension/index.ts"), join(dir, "extension.cjs"), dir);
  await build({
    ...cjs,
    entryPoints: [join(root, "lambda-extension/loader.ts")],
    outfile: join(dir, "start.cjs"),
  });
  const names = ["start.cjs", "extension.cjs", ...lazyParts.map((part) => part.file)];
  return { files: new Map(names.map((name) => [name, join(dir, name)])) };
}

/** The Node version the project runs on (the `node` devDependency), shipped in the standalone flavour. */
async function projectNodeVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(root, "node_modules/node/package.json"), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/**
 * The official Node binary and licence for `architecture`, from the `node-linux-*` npm package, which
 * refuses to install on another platform (EBADPLATFORM): `npm pack` fetches it into a cache, checking
 * the registry's integrity hash, and only those two files are taken out.
 */
async function nodeDistribution(
  architecture: Architecture,
  progress: Progress,
): Promise<{ binary: string; licence: string }> {
  const version = await projectNodeVersion();
  const packageName = `node-linux-${nodePackageArch[architecture]}`;
  const cacheDir = join(root, "node_modules/.cache/token-broker-layer");
  const extracted = join(cacheDir, `${packageName}-${version}`);
  const binary = join(extracted, "package/bin/node");
  const licence = join(extracted, "package/LICENSE");
  if (await exists(binary)) {
    progress(
      `standalone ${architecture}: Node ${version} from ${relative(root, extracted)} (fetched before)`,
    );
    return { binary, licence };
  }

  progress(
    `standalone ${architecture}: fetching Node ${version} from the npm registry (package ${packageName}@${version}, checked against its integrity hash) into ${relative(root, cacheDir)}`,
  );
  await mkdir(cacheDir, { recursive: true });
  // Two builds may run at once (test workers): each unpacks privately, the first rename wins.
  const scratch = await mkdtemp(join(cacheDir, "fetch-"));
  try {
    await run("npm", ["pack", `${packageName}@${version}`, "--pack-destination", scratch, "--silent"], {
      cwd: scratch,
    });
    const tarball = join(scratch, `${packageName}-${version}.tgz`);
    const unpacked = join(scratch, "unpacked");
    await mkdir(unpacked);
    await run("tar", ["-xzf", tarball, "-C", unpacked, "package/bin/node", "package/LICENSE"]);
    await rename(unpacked, extracted).catch(async (error: NodeJS.ErrnoException) => {
      if (!(await exists(binary))) throw error;
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return { binary, licence };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Fixes a staged file's mode and mtime, so the zip records exactly these. */
async function settle(path: string, mode: number): Promise<void> {
  await chmod(path, mode);
  await utimes(path, fixedMtime, fixedMtime);
}

async function place(path: string, mode: number, from: string): Promise<void> {
  await mkdir(join(path, ".."), { recursive: true });
  await copyFile(from, path);
  await settle(path, mode);
}

/** Node's name for the architecture of the machine running the build. */
const hostArchitecture: Architecture | undefined =
  process.arch === "x64" ? "x86_64" : process.arch === "arm64" ? "arm64" : undefined;

/** Stages one layer in `dir` and returns its entries, as they go into the zip. */
async function stageLayer(
  dir: string,
  flavour: Flavour,
  architecture: Architecture,
  code: ExtensionCode,
  progress: Progress,
): Promise<string[]> {
  const entries = [`extensions/${extensionName}`];
  await place(join(dir, "extensions", extensionName), 0o755, join(root, "lambda-extension/launcher.sh"));
  for (const [name, path] of code.files) {
    await place(join(dir, "token-broker", name), 0o644, path);
    entries.push(`token-broker/${name}`);
  }
  if (flavour === "standalone") {
    const node = await nodeDistribution(architecture, progress);
    await place(join(dir, "token-broker/node"), 0o755, node.binary);
    await place(join(dir, "token-broker/LICENSE.node"), 0o644, node.licence);
    entries.push("token-broker/node", "token-broker/LICENSE.node");
    if (architecture === hostArchitecture) {
      progress(
        `standalone ${architecture}: training the V8 code cache (one start-up of the extension against a stand-in Extensions API)`,
      );
      await trainCodeCache(join(dir, "extensions", extensionName));
      // One cache per file the training run ran, next to it.
      const caches = (await readdir(join(dir, "token-broker")))
        .filter((name) => name.endsWith(".v8cache"))
        .sort()
        .map((name) => `token-broker/${name}`);
      for (const cache of caches) await settle(join(dir, cache), 0o644);
      entries.push(...caches);
    }
  }
  for (const folder of ["extensions", "token-broker"])
    await utimes(join(dir, folder), fixedMtime, fixedMtime);
  return entries;
}

async function unpackedSize(dir: string, entries: readonly string[]): Promise<number> {
  const sizes = await Promise.all(entries.map(async (entry) => (await stat(join(dir, entry))).size));
  return sizes.reduce((sum, size) => sum + size, 0);
}

export function layerFileName(flavour: Flavour, architecture: Architecture): string {
  return `${extensionName}-${flavour}-${architecture}.zip`;
}

/** Builds the requested layers (default: all four) into `outDir` (default `dist/layers`). */
export async function buildLayers(options: BuildLayersOptions = {}): Promise<Layer[]> {
  const outDir = options.outDir ?? join(root, "dist/layers");
  await mkdir(outDir, { recursive: true });
  const progress = options.progress ?? (() => {});
  const work = await mkdtemp(join(outDir, ".build-"));
  try {
    progress(
      "bundling the extension with esbuild (lambda-extension/ and broker/, split into lazily loaded parts)",
    );
    const code = await bundleExtension(work);
    const layers: Layer[] = [];
    for (const flavour of options.flavours ?? flavours) {
      for (const architecture of options.architectures ?? architectures) {
        const stage = join(work, `${flavour}-${architecture}`);
        const entries = await stageLayer(stage, flavour, architecture, code, progress);
        const zipPath = join(outDir, layerFileName(flavour, architecture));
        const partial = join(work, layerFileName(flavour, architecture));
        // Debian's Info-ZIP keeps Unix modes; -X leaves out uid/gid and extended timestamps.
        await run("zip", ["-q", "-X", "-D", partial, ...entries], { cwd: stage });
        await rename(partial, zipPath);
        progress(`wrote ${relative(process.cwd(), zipPath)}`);
        layers.push({
          flavour,
          architecture,
          zipPath,
          compressedBytes: (await stat(zipPath)).size,
          unpackedBytes: await unpackedSize(stage, entries),
        });
      }
    }
    return layers;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
