import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildLayers, type Flavour } from "../../scripts/layer.ts";

/** A layer zip built for a test, in a temporary folder of its own. */
export interface BuiltLayer {
  readonly zipPath: string;
  remove(): Promise<void>;
}

/** Builds the x86_64 layer of `flavour` as `npm run build:layer` does, into a fresh folder. */
export async function buildLayer(flavour: Flavour): Promise<BuiltLayer> {
  const outDir = await mkdtemp(join(tmpdir(), "layers-"));
  const remove = () => rm(outDir, { recursive: true, force: true });
  try {
    const [layer] = await buildLayers({ outDir, flavours: [flavour], architectures: ["x86_64"] });
    if (layer === undefined) throw new Error(`buildLayers built no ${flavour} x86_64 layer`);
    return { zipPath: layer.zipPath, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}
