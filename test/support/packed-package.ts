import { execFile } from "node:child_process";
import { cp, symlink } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "./child.ts";

const run = promisify(execFile);

/** What `npm pack --json` reports of the tarball it wrote. */
export interface PackedPackage {
  /** The tarball's absolute path. */
  readonly tarball: string;
  /** Bytes of the tarball, and of its files unpacked. */
  readonly size: number;
  readonly unpackedSize: number;
  readonly files: readonly { readonly path: string; readonly size: number }[];
  /** What the prepack builds printed. */
  readonly buildOutput: string;
}

/**
 * `npm pack` of the repository's files as a clone has them (tracked and new, nothing ignored),
 * copied into `work/source` first so the prepack builds write nowhere near this checkout's dist/.
 * The tarball lands in `work`.
 */
export async function packRepository(work: string): Promise<PackedPackage> {
  const source = path.join(work, "source");
  const { stdout } = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: repoRoot,
    maxBuffer: 16 * 1024 * 1024,
  });
  for (const file of new Set(stdout.split("\0").filter(Boolean))) {
    await cp(path.join(repoRoot, file), path.join(source, file), { recursive: true }).catch(
      (error: NodeJS.ErrnoException) => {
        if (error.code !== "ENOENT") throw error; // a file deleted but not yet committed
      },
    );
  }
  await symlink(path.join(repoRoot, "node_modules"), path.join(source, "node_modules"));
  const { stdout: json } = await run("npm", ["pack", "--json", "--pack-destination", work], {
    cwd: source,
    timeout: 300_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  // The prepack builds print to stdout too; npm's JSON report is the last thing it writes.
  const reportStart = json.search(/^\[$/m);
  const [report] = JSON.parse(json.slice(reportStart)) as (Omit<PackedPackage, "tarball" | "buildOutput"> & {
    filename: string;
  })[];
  if (report === undefined) throw new Error("npm pack reported no tarball");
  const { filename, ...sizes } = report;
  return { ...sizes, tarball: path.join(work, filename), buildOutput: json.slice(0, reportStart) };
}
