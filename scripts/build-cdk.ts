import { execFile } from "node:child_process";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/**
 * `npm run build:cdk`: the `token-broker/cdk` library (infra/index.ts and what it imports) as
 * JavaScript with declarations in dist/cdk, because an app's Node and tsc do not compile
 * TypeScript inside node_modules. tsc rewrites the sources' `./x.ts` imports to `./x.js` in the
 * JavaScript but leaves them in the declarations, where a consumer's tsc (without
 * `allowImportingTsExtensions`) refuses them; the declarations get the same rewrite here.
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
console.log(`built ${outDir} (${declarations} declaration files)`);
