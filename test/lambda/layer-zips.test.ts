import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Architecture,
  architectures,
  buildLayers,
  type Flavour,
  flavours,
  type Layer,
  layerFileName,
} from "../../scripts/layer.ts";
import { entryHead, type ZipEntry, zipEntries } from "./zip-entries.ts";

/**
 * The four zips `npm run build:layer` writes, read the way Lambda reads them: entries unpacked
 * under /opt, Unix modes from the zip, the launcher in extensions/, and for the standalone
 * flavour a Node 24 binary built for the layer's architecture (arm64 can only be checked here,
 * not run).
 */

const root = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);
const MB = 1024 * 1024;
/** `e_machine` of the ELF header (offset 18), per the System V ABI supplements. */
const elfMachine: Record<Architecture, number> = { x86_64: 62, arm64: 183 };
/**
 * Lambda allows 250 MB unpacked for a function and all its layers, and 50 MB for a zip uploaded
 * directly. The standalone layer must leave well over 100 MB to the function.
 */
const unpackedBudget: Record<Flavour, number> = { nodejs: 5 * MB, standalone: 140 * MB };
const zipLimit = 50 * MB;

const regularFile = 0o100000;
const executable = regularFile | 0o755;
const readable = regularFile | 0o644;
/** The code cache is made by running the layer's Node, so only for the build machine's architecture. */
const hostArchitecture: Architecture = process.arch === "arm64" ? "arm64" : "x86_64";

function expectedEntries(flavour: Flavour, architecture: Architecture): Record<string, number> {
  const common = {
    "extensions/token-broker": executable,
    "token-broker/start.cjs": readable,
    "token-broker/extension.cjs": readable,
    "token-broker/broker.cjs": readable,
    "token-broker/chain.cjs": readable,
    "token-broker/ops.cjs": readable,
    "token-broker/emf.cjs": readable,
    "token-broker/prometheus.cjs": readable,
    "token-broker/doctor.cjs": readable,
  };
  if (flavour === "nodejs") return common;
  return {
    ...common,
    "token-broker/node": executable,
    "token-broker/LICENSE.node": readable,
    ...(architecture === hostArchitecture
      ? {
          "token-broker/extension.cjs.v8cache": readable,
          "token-broker/broker.cjs.v8cache": readable,
          "token-broker/chain.cjs.v8cache": readable,
          "token-broker/emf.cjs.v8cache": readable,
        }
      : {}),
  };
}

let outDir: string;
let layers: Layer[];
const entries = new Map<string, ZipEntry[]>();

function layer(flavour: Flavour, architecture: Architecture): Layer {
  const found = layers.find((item) => item.flavour === flavour && item.architecture === architecture);
  if (found === undefined) throw new Error(`no ${flavour} ${architecture} layer was built`);
  return found;
}

function entry(zip: Layer, name: string): ZipEntry {
  const found = entries.get(zip.zipPath)?.find((item) => item.name === name);
  if (found === undefined) throw new Error(`${zip.zipPath} has no ${name}`);
  return found;
}

async function projectNodeVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(root, "node_modules/node/package.json"), "utf8")) as {
    version: string;
  };
  return `v${pkg.version}`;
}

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), "layer-zips-"));
  layers = await buildLayers({ outDir });
  for (const built of layers) entries.set(built.zipPath, await zipEntries(built.zipPath));
});

afterAll(async () => {
  if (outDir !== undefined) await rm(outDir, { recursive: true, force: true });
});

describe("the layer zips", () => {
  it("are the four flavour × architecture zips, named as infra/ expects them", () => {
    expect(layers.map((built) => built.zipPath).sort()).toEqual(
      flavours
        .flatMap((flavour) => architectures.map((arch) => join(outDir, layerFileName(flavour, arch))))
        .sort(),
    );
  });

  describe.each(flavours.flatMap((flavour) => architectures.map((arch) => [flavour, arch] as const)))(
    "%s %s",
    (flavour, architecture) => {
      it("holds exactly the files that run, with Unix modes Lambda keeps (launcher and node executable)", () => {
        const zip = layer(flavour, architecture);
        const listed = entries.get(zip.zipPath) ?? [];
        expect(Object.fromEntries(listed.map((item) => [item.name, item.mode]))).toEqual(
          expectedEntries(flavour, architecture),
        );
        for (const item of listed) {
          expect(item.hostSystem).toBe(3);
          expect(item.modified).toEqual({ year: 2020, month: 1, day: 1 });
        }
      });

      it("starts the extension through a POSIX sh launcher that finds its files next to itself", async () => {
        const zip = layer(flavour, architecture);
        const launcher = entry(zip, "extensions/token-broker");
        const text = (await entryHead(zip.zipPath, launcher, launcher.uncompressedSize)).toString("utf8");
        expect(text).toBe(await readFile(join(root, "lambda-extension/launcher.sh"), "utf8"));
        expect(text.startsWith("#!/bin/sh\n")).toBe(true);
        const commands = text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
        expect(commands.filter((line) => line.includes("/opt"))).toEqual([]);
      });

      it("reports its compressed and unpacked size, within Lambda's limits", () => {
        const zip = layer(flavour, architecture);
        const listed = entries.get(zip.zipPath) ?? [];
        expect(zip.unpackedBytes).toBe(listed.reduce((sum, item) => sum + item.uncompressedSize, 0));
        expect(zip.unpackedBytes).toBeLessThanOrEqual(unpackedBudget[flavour]);
        expect(zip.compressedBytes).toBeLessThanOrEqual(zipLimit);
      });
    },
  );

  it.each(architectures)(
    "ships the official Node binary for %s in the standalone flavour",
    async (architecture) => {
      const zip = layer("standalone", architecture);
      const head = await entryHead(zip.zipPath, entry(zip, "token-broker/node"), 20);
      expect(head.subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
      expect(head.readUInt8(4)).toBe(2); // ELFCLASS64
      expect(head.readUInt8(5)).toBe(1); // little endian
      expect(head.readUInt16LE(18)).toBe(elfMachine[architecture]);
      const licence = entry(zip, "token-broker/LICENSE.node");
      expect((await entryHead(zip.zipPath, licence, 200)).toString("utf8")).toMatch(/^Node\.js is licensed/);
    },
  );

  it.each(["extension.cjs", "broker.cjs", "chain.cjs", "ops.cjs", "emf.cjs", "prometheus.cjs", "doctor.cjs"])(
    "carries one and the same %s in all four zips",
    (file) => {
      const crcs = new Set(layers.map((built) => entry(built, `token-broker/${file}`).crc32));
      expect(crcs.size).toBe(1);
    },
  );

  it("registers from extension.cjs alone: the broker (pino) in broker.cjs, prom-client in prometheus.cjs, express in ops.cjs, the AWS SDK and google-auth-library in chain.cjs, all taking the broker's errors from extension.cjs", async () => {
    const zip = layer("nodejs", "x86_64");
    const text = async (file: string) => {
      const item = entry(zip, `token-broker/${file}`);
      return (await entryHead(zip.zipPath, item, item.uncompressedSize)).toString("utf8");
    };
    const sources = {
      extension: await text("extension.cjs"),
      broker: await text("broker.cjs"),
      chain: await text("chain.cjs"),
      ops: await text("ops.cjs"),
      prometheus: await text("prometheus.cjs"),
    };
    // Minifying keeps string literals: each marker is one only that library holds.
    const markers = {
      pino: "pino.serializers",
      "prom-client": "process_cpu_user_seconds_total",
      express: '"x-powered-by"',
      "@aws-sdk/client-sts": "AssumeRoleWithWebIdentity",
      "google-auth-library": "workforce_pool_user_project",
      gaxios: "GaxiosError",
      "node-fetch": "node-fetch",
    } as const;
    const holders = (library: keyof typeof markers) =>
      (Object.keys(sources) as (keyof typeof sources)[]).filter((file) =>
        sources[file].includes(markers[library]),
      );
    expect(holders("pino")).toEqual(["broker"]);
    expect(holders("prom-client")).toEqual(["prometheus"]);
    expect(holders("express")).toEqual(["ops"]);
    for (const library of ["@aws-sdk/client-sts", "google-auth-library", "gaxios"] as const) {
      expect(holders(library)).toEqual(["chain"]);
    }
    // The doctor (and the IAM client it needs) is read only when the first chain fails.
    for (const file of ["extension", "broker", "chain", "ops"] as const)
      expect(sources[file]).not.toContain("SimulatePrincipalPolicy");
    // Node's fetch stack (undici) stays unloaded: gaxios fetches and builds headers with node-fetch.
    expect(holders("node-fetch")).toEqual(["chain"]);
    for (const part of [sources.broker, sources.chain, sources.ops]) {
      expect(part).toContain('require("token-broker:broker/errors.ts")');
    }
    // One BrokerError class, the extension's: `isBrokerError` holds for errors the parts throw.
    const defines = (source: string) => /\bstatic\{[\w$]+\(this,"BrokerError"\)\}/.test(source);
    expect(defines(sources.extension)).toBe(true);
    expect(defines(sources.broker) || defines(sources.chain) || defines(sources.ops)).toBe(false);
  });

  it("gives the same bytes when built again from the same sources", async () => {
    const [first, second] = [
      await mkdtemp(join(tmpdir(), "layer-a-")),
      await mkdtemp(join(tmpdir(), "layer-b-")),
    ];
    try {
      const options = { flavours: ["nodejs"], architectures: ["arm64"] } as const;
      const [a] = await buildLayers({ outDir: first, ...options });
      const [b] = await buildLayers({ outDir: second, ...options });
      expect(await readFile(b?.zipPath ?? "")).toEqual(await readFile(a?.zipPath ?? ""));
    } finally {
      await Promise.all([first, second].map((dir) => rm(dir, { recursive: true, force: true })));
    }
  });
});

describe("the unpacked x86_64 layers, run outside /opt", () => {
  const notInLambda =
    "AWS_LAMBDA_RUNTIME_API is not set: this program runs as a Lambda extension from /opt/extensions; run token-broker for the sidecar";

  it.each([
    // The standalone flavour needs no node on PATH: it brings its own.
    ["standalone", "/nonexistent"],
    // The nodejs flavour takes the function's node, which Lambda puts on PATH.
    ["nodejs", dirname(process.execPath)],
  ] as const)("the %s launcher starts the extension with PATH=%s", async (flavour, path) => {
    const unpacked = await mkdtemp(join(tmpdir(), "layer-unpacked-"));
    try {
      await run("unzip", ["-q", layer(flavour, "x86_64").zipPath, "-d", unpacked]);
      const outcome = await run(join(unpacked, "extensions/token-broker"), [], { env: { PATH: path } }).then(
        () => ({ code: 0, stdout: "" }),
        (error: { code: number; stdout: string }) => error,
      );
      expect(outcome.code).toBe(1);
      expect(JSON.parse(outcome.stdout)).toMatchObject({ level: 50, msg: notInLambda });
    } finally {
      await rm(unpacked, { recursive: true, force: true });
    }
  });

  it("runs the Node version the project runs on in the standalone flavour", async () => {
    const unpacked = await mkdtemp(join(tmpdir(), "layer-node-"));
    try {
      await run("unzip", ["-q", layer("standalone", "x86_64").zipPath, "token-broker/node", "-d", unpacked]);
      const { stdout } = await run(join(unpacked, "token-broker/node"), ["--version"]);
      expect(stdout.trim()).toBe(await projectNodeVersion());
    } finally {
      await rm(unpacked, { recursive: true, force: true });
    }
  });
});
