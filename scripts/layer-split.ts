import { join, relative, resolve } from "node:path";
import { type BuildOptions, build } from "esbuild";

/**
 * Splits the Lambda extension into CommonJS files: `extension.cjs` (broker, metadata listener,
 * lifecycle) and one file per part that `broker/main.ts` imports only on first use. V8 reads and
 * keeps every byte of a script it runs, so the extension registers without the parts' megabytes,
 * and a part nobody asks for (the ops routes, seldom asked anything in Lambda) is never read:
 *
 *   chain.cjs   broker/token-chain.ts: the AWS SDK, google-auth-library and the code around them
 *   ops.cjs     broker/ops-server.ts: express and the ops routes
 *   emf.cjs     broker/emf-aggregate.ts: the CloudWatch EMF window, read on the first event
 *   doctor.cjs  broker/doctor/verdict.ts: the doctor's verdict, run only if the first chain fails
 *
 * A project module the extension holds anyway (`broker/errors.ts`: `instanceof BrokerError` must
 * hold across the files) is not copied into a part: the part requires it under a `token-broker:`
 * id, and the extension hands it its own instance when it runs the part. What only a part uses
 * goes into that part.
 */

export interface LazyPart {
  /** The module `broker/main.ts` imports dynamically, relative to the project root. */
  readonly module: string;
  /** The file it becomes, next to `extension.cjs`. */
  readonly file: string;
}

export const lazyParts: readonly LazyPart[] = [
  { module: "broker/token-chain.ts", file: "chain.cjs" },
  { module: "broker/ops-server.ts", file: "ops.cjs" },
  { module: "broker/emf-aggregate.ts", file: "emf.cjs" },
  { module: "broker/doctor/verdict.ts", file: "doctor.cjs" },
];

/** The id a part requires a shared project module by, e.g. `token-broker:broker/errors.ts`. */
const sharedPrefix = "token-broker:";

const importer = "broker/main.ts";

/** How `broker/main.ts` names a part in its `import()`. */
function specifier(root: string, part: LazyPart): string {
  return `./${relative(join(root, "broker"), join(root, part.module)).split("\\").join("/")}`;
}

function projectId(root: string, path: string): string {
  return relative(root, path).split("\\").join("/");
}

/**
 * Builds `entry` into `outfile` with every lazy part in a file of its own in `outDir`.
 * First the extension's own project modules are found (the parts left out), then each part is
 * built sharing those, then the extension, which runs each part's file on its first import.
 */
export async function buildSplit(
  root: string,
  options: BuildOptions,
  entry: string,
  outfile: string,
  outDir: string,
): Promise<void> {
  const parts = new Map(lazyParts.map((part) => [specifier(root, part), part]));
  const isPartImport = (path: string, from: string) => projectId(root, from) === importer && parts.has(path);

  const survey = await build({
    ...options,
    entryPoints: [entry],
    write: false,
    metafile: true,
    plugins: [
      ...(options.plugins ?? []),
      {
        name: "lazy-parts-left-out",
        setup(b) {
          b.onResolve({ filter: /^\.\// }, (args) =>
            isPartImport(args.path, args.importer) ? { path: args.path, external: true } : undefined,
          );
        },
      },
    ],
  });
  const held = new Set(
    Object.keys(survey.metafile?.inputs ?? {})
      .filter((path) => !path.includes("node_modules/"))
      .map((path) => projectId(root, resolve(path))),
  );

  const shared = new Map<LazyPart, Set<string>>();
  for (const part of lazyParts) {
    const uses = new Set<string>();
    shared.set(part, uses);
    await build({
      ...options,
      entryPoints: [join(root, part.module)],
      outfile: join(outDir, part.file),
      plugins: [
        ...(options.plugins ?? []),
        {
          name: "lazy-part",
          setup(b) {
            b.onResolve({ filter: /^\.\.?\// }, (args) => {
              if (args.importer.includes("/node_modules/")) return undefined;
              const id = projectId(root, join(args.resolveDir, args.path));
              if (!held.has(id)) return undefined;
              uses.add(id);
              return { path: `${sharedPrefix}${id}`, external: true };
            });
          },
        },
      ],
    });
  }

  await build({
    ...options,
    entryPoints: [entry],
    outfile,
    plugins: [
      ...(options.plugins ?? []),
      {
        name: "lazy-part-loader",
        setup(b) {
          b.onResolve({ filter: /^\.\// }, (args) =>
            isPartImport(args.path, args.importer) ? { path: args.path, namespace: "lazy-part" } : undefined,
          );
          b.onLoad({ filter: /.*/, namespace: "lazy-part" }, (args) => {
            const part = parts.get(args.path) as LazyPart;
            const provided = [...(shared.get(part) ?? [])]
              .sort()
              .map(
                (id) =>
                  `${JSON.stringify(`${sharedPrefix}${id}`)}: require(${JSON.stringify(join(root, id))})`,
              );
            return {
              loader: "js",
              resolveDir: root,
              contents: [
                'const { join } = require("node:path");',
                `const { runCommonJs } = require(${JSON.stringify(join(root, "lambda-extension/cached-commonjs.ts"))});`,
                `module.exports = runCommonJs(join(__dirname, ${JSON.stringify(part.file)}), { ${provided.join(", ")} }).exports;`,
              ].join("\n"),
            };
          });
        },
      },
    ],
  });
}
