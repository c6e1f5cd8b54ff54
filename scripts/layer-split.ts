import { join, relative, resolve } from "node:path";
import { type BuildOptions, build, type Plugin } from "esbuild";

/*
 * Splits the Lambda extension into CommonJS files, one per part imported only on first use; a part
 * takes the project modules an earlier file holds from that file, so each has one instance.
 * Which files and why: docs/layer-build.md#files-loaded-on-first-use
 */

export interface LazyPart {
  /** The module imported dynamically, relative to the project root. */
  readonly module: string;
  /** The project module whose `import()` loads it. */
  readonly importer: string;
  /** The file it becomes, next to `extension.cjs`. */
  readonly file: string;
}

/** In load order: a part's importer is in the extension or in a part listed before it. */
export const lazyParts: readonly LazyPart[] = [
  { module: "broker/main.ts", importer: "lambda-extension/lifecycle.ts", file: "broker.cjs" },
  { module: "broker/token-chain.ts", importer: "broker/main.ts", file: "chain.cjs" },
  { module: "broker/ops-server.ts", importer: "broker/main.ts", file: "ops.cjs" },
  { module: "broker/emf-aggregate.ts", importer: "broker/main.ts", file: "emf.cjs" },
  { module: "broker/prometheus-metrics.ts", importer: "broker/main.ts", file: "prometheus.cjs" },
  { module: "broker/doctor/verdict.ts", importer: "broker/main.ts", file: "doctor.cjs" },
];

/** The id a part requires a shared project module by, e.g. `token-broker:broker/errors.ts`. */
const sharedPrefix = "token-broker:";
/** Runs a part's file; the extension holds it, every later file gets it from there. */
const runnerModule = "lambda-extension/cached-commonjs.ts";

function projectId(root: string, path: string): string {
  return relative(root, path).split("\\").join("/");
}

/** One output file: the extension itself or a part. */
interface Bundle {
  readonly entry: string;
  readonly outfile: string;
  /** Project modules bundled into this file. */
  readonly own: Set<string>;
  /** Project modules an earlier file holds and hands to this one. */
  readonly provided: Set<string>;
  /** Project modules of every file loaded before this one, by id. */
  readonly before: ReadonlySet<string>;
}

/**
 * Builds `entry` into `outfile` and every lazy part into a file of its own in `outDir`. Each file
 * is surveyed first (what it holds, with later parts left out), in load order, then built: every
 * `import()` of a part becomes a run of that part's file, handed the modules it shares.
 */
export async function buildSplit(
  root: string,
  options: BuildOptions,
  entry: string,
  outfile: string,
  outDir: string,
): Promise<void> {
  const partOf = (from: string, path: string): LazyPart | undefined =>
    lazyParts.find(
      (part) =>
        part.importer === projectId(root, from) &&
        projectId(root, join(root, part.importer, "..", path)) === part.module,
    );
  const bundles = new Map<string, Bundle>();
  const bundleHolding = (id: string): Bundle | undefined =>
    [...bundles.values()].find((bundle) => bundle.own.has(id));

  /** Leaves parts out and takes modules of earlier files from them, recording which. */
  const sharing = (bundle: Bundle): Plugin => ({
    name: "lazy-parts",
    setup(b) {
      b.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (args.importer.includes("/node_modules/")) return undefined;
        if (partOf(args.importer, args.path) !== undefined) return undefined;
        const id = projectId(root, join(args.resolveDir, args.path));
        if (!bundle.before.has(id)) return undefined;
        bundle.provided.add(id);
        return { path: `${sharedPrefix}${id}`, external: true };
      });
      b.onResolve({ filter: new RegExp(`^${sharedPrefix}`) }, (args) => ({
        path: args.path,
        external: true,
      }));
    },
  });

  const survey = async (bundle: Bundle) => {
    const result = await build({
      ...options,
      entryPoints: [bundle.entry],
      write: false,
      metafile: true,
      plugins: [
        ...(options.plugins ?? []),
        sharing(bundle),
        {
          name: "lazy-parts-left-out",
          setup(b) {
            b.onResolve({ filter: /^\.\.?\// }, (args) =>
              partOf(args.importer, args.path) === undefined
                ? undefined
                : { path: args.path, external: true },
            );
          },
        },
      ],
    });
    for (const path of Object.keys(result.metafile?.inputs ?? {})) {
      if (!path.includes("node_modules/") && !path.startsWith(sharedPrefix))
        bundle.own.add(projectId(root, resolve(path)));
    }
  };

  const extension: Bundle = { entry, outfile, own: new Set(), provided: new Set(), before: new Set() };
  bundles.set("", extension);
  await survey(extension);
  extension.own.add(runnerModule);
  for (const part of lazyParts) {
    const parent = bundleHolding(part.importer);
    if (parent === undefined) throw new Error(`${part.importer} (importer of ${part.module}) is in no file`);
    const bundle: Bundle = {
      entry: join(root, part.module),
      outfile: join(outDir, part.file),
      own: new Set(),
      provided: new Set(),
      before: new Set([...parent.before, ...parent.own]),
    };
    bundles.set(part.file, bundle);
    await survey(bundle);
    if (lazyParts.some((child) => bundle.own.has(child.importer))) bundle.provided.add(runnerModule);
  }

  for (const bundle of bundles.values()) {
    /** How this file's code names a module: its own copy by path, an earlier file's by shared id. */
    const reference = (id: string) =>
      JSON.stringify(bundle.own.has(id) ? join(root, id) : `${sharedPrefix}${id}`);
    await build({
      ...options,
      entryPoints: [bundle.entry],
      outfile: bundle.outfile,
      plugins: [
        ...(options.plugins ?? []),
        sharing(bundle),
        {
          name: "lazy-part-loader",
          setup(b) {
            b.onResolve({ filter: /^\.\.?\// }, (args) => {
              const part = partOf(args.importer, args.path);
              return part === undefined ? undefined : { path: part.file, namespace: "lazy-part" };
            });
            b.onLoad({ filter: /.*/, namespace: "lazy-part" }, (args) => {
              const shared = bundles.get(args.path) as Bundle;
              const provided = [...shared.provided]
                .sort()
                .map((id) => `${JSON.stringify(`${sharedPrefix}${id}`)}: require(${reference(id)})`);
              return {
                loader: "js",
                resolveDir: root,
                contents: [
                  'const { join } = require("node:path");',
                  `const { runCommonJs } = require(${reference(runnerModule)});`,
                  `module.exports = runCommonJs(join(__dirname, ${JSON.stringify(args.path)}), { ${provided.join(", ")} }).exports;`,
                ].join("\n"),
              };
            });
          },
        },
      ],
    });
  }
}
