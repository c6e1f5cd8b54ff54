import { join, relative } from "node:path";
import type { Plugin } from "esbuild";

/**
 * Splits the Lambda extension into two CommonJS files: `extension.cjs` (broker, listeners,
 * lifecycle) and `chain.cjs` (`broker/token-chain.ts`: the AWS SDK, google-auth-library and the
 * code around them). V8 reads and pre-parses every byte of a script before running any of it,
 * so the extension registers without the chain's megabytes; `broker/main.ts` imports the chain
 * only on the first token request, and that import is what runs `chain.cjs`.
 *
 * The project's own modules the chain uses (`broker/errors.ts`: `instanceof BrokerError` must
 * hold across the two files) are not copied into it: `chain.cjs` requires them under a
 * `token-broker:` id, and the extension hands it its own instances when it runs the chain.
 */

/** The id `chain.cjs` requires a shared project module by, e.g. `token-broker:broker/errors.ts`. */
const sharedPrefix = "token-broker:";

export interface ChainSplit {
  /** For the `chain.cjs` build: bundles the chain's libraries, leaves the project's modules shared. */
  readonly chainPlugin: Plugin;
  /** For the `extension.cjs` build, after the chain's: turns `import("./token-chain.ts")` into running `chain.cjs`. */
  readonly extensionPlugin: Plugin;
}

export function chainSplit(root: string): ChainSplit {
  const entry = join(root, "broker/token-chain.ts");
  const shared = new Set<string>();
  const chainPlugin: Plugin = {
    name: "token-chain",
    setup(build) {
      build.onResolve({ filter: /^\.\.?\// }, (args) => {
        // The entry's own imports are the chain; node_modules' relative imports are libraries.
        if (args.importer === entry || args.importer.includes("/node_modules/")) return undefined;
        const id = relative(root, join(args.resolveDir, args.path)).split("\\").join("/");
        shared.add(id);
        return { path: `${sharedPrefix}${id}`, external: true };
      });
    },
  };
  const extensionPlugin: Plugin = {
    name: "token-chain-loader",
    setup(build) {
      build.onResolve({ filter: /^\.\/token-chain\.ts$/ }, (args) =>
        args.importer === join(root, "broker/main.ts")
          ? { path: "chain", namespace: "token-chain" }
          : undefined,
      );
      build.onLoad({ filter: /.*/, namespace: "token-chain" }, () => {
        const provided = [...shared]
          .sort()
          .map(
            (id) => `${JSON.stringify(`${sharedPrefix}${id}`)}: require(${JSON.stringify(join(root, id))})`,
          );
        return {
          loader: "js",
          resolveDir: root,
          contents: [
            'const { join } = require("node:path");',
            `const { runCommonJs } = require(${JSON.stringify(join(root, "lambda-extension/cached-commonjs.ts"))});`,
            `module.exports = runCommonJs(join(__dirname, "chain.cjs"), { ${provided.join(", ")} }).exports;`,
          ].join("\n"),
        };
      });
    },
  };
  return { chainPlugin, extensionPlugin };
}
