import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Architecture } from "aws-cdk-lib/aws-lambda";
import { type LayerFlavour, layerZipName } from "../constructs/token-broker-layer.ts";

/**
 * Four small but real layer zips (launcher at `extensions/token-broker`), zipped with the same
 * `zip` tool the layer build uses. Synthesis only stages them, so the standalone build, which
 * carries Node, is not needed to test the constructs.
 */
export function makeLayerFixtures(): string {
  const directory = mkdtempSync(path.join(tmpdir(), "token-broker-layers-"));
  for (const flavour of ["nodejs", "standalone"] satisfies LayerFlavour[]) {
    for (const architecture of [Architecture.X86_64, Architecture.ARM_64]) {
      const stage = path.join(directory, `${flavour}-${architecture.name}`);
      mkdirSync(path.join(stage, "extensions"), { recursive: true });
      const launcher = path.join(stage, "extensions", "token-broker");
      writeFileSync(launcher, `#!/bin/sh\n# fixture: ${flavour} ${architecture.name}\nexit 0\n`);
      chmodSync(launcher, 0o755);
      const zip = path.join(directory, layerZipName(flavour, architecture));
      execFileSync("zip", ["-q", "-X", "-r", zip, "extensions"], { cwd: stage });
    }
  }
  return directory;
}
