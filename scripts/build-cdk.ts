import { execFile } from "node:child_process";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";

/**
 * `npm run build:cdk`: the `token-broker/cdk` library (infra/index.ts and its imports) as JavaScript with
 * declarations in dist/cdk, since apps do not compile TypeScript in node_modules. tsc leaves `./x.ts`
 * imports in declarations, which a consumer's tsc refuses, so they get the `./x.js` rewrite here.
 */
const root = fileURLToPath(new URL("..", import.meta.url));
const outDir = path.join(root, "dist", "cdk");
await rm(outDir, { recursive: true, force: true });
const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
await promisify(execFile)(process.execPath, [tsc, "-p", path.join(root, "tsconfig.cdk.json")], { cwd: root });

const relativeTsImport = /(from\s+"\.{1,2}\/[^"]+)\.ts"/g;
let declarations = 0;
for (const entry of await readdir(outDir, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith(".d.ts")) continue;
  const file = path.join(entry.parentPath, entry.name);
  const text = await readFile(file, "utf8");
  await writeFile(file, text.replace(relativeTsImport, '$1.js"'));
  declarations += 1;
}

/**
 * An app that installs the package gets its `dependencies` and nothing of the bundled bin's
 * (dev dependencies), so every package the compiled library imports must be a dependency or a
 * peer (aws-cdk-lib, constructs); esbuild's metafile lists the imports of every file it reaches.
 */
const manifest = JSON.parse(await readFile(path.join(root, "package.json"), "utf8")) as {
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
};
const declared = new Set(Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies }));
const { metafile } = await build({
  entryPoints: [path.join(outDir, "infra", "index.js")],
  bundle: true,
  write: false,
  metafile: true,
  platform: "node",
  format: "esm",
  packages: "external",
  logLevel: "silent",
  absWorkingDir: root,
});
const packageOf = (specifier: string) =>
  specifier
    .split("/")
    .slice(0, specifier.startsWith("@") ? 2 : 1)
    .join("/");
for (const [file, input] of Object.entries(metafile.inputs)) {
  for (const { path: specifier, external } of input.imports) {
    const name = packageOf(specifier);
    if (!external || specifier.startsWith("node:") || builtinModules.includes(name) || declared.has(name))
      continue;
    console.error(
      `build:cdk: ${path.relative(root, file)} imports ${specifier}, which package.json lists in neither dependencies nor peerDependencies, so an app that installs token-broker could not load it; import it only from the bundled broker, or make it a dependency`,
    );
    process.exit(1);
  }
}
console.log(
  `built ${outDir} (${declarations} declaration files; it imports only node:*, ${[...declared].join(", ")})`,
);
