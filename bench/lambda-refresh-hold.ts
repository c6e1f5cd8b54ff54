import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { lambdaRefreshHold } from "../broker/policy.ts";
import type { Layer } from "../scripts/layer.ts";
import { bundleFunction } from "../test/lambda-runtime/function-bundle.ts";
import { type InvokeResult, LocalLambda, payloadOf } from "../test/lambda-runtime/local-lambda.ts";
import { startMovedCloud } from "../test/sdk-cadence/lambda-cadence.ts";
import { freePort } from "../test/support/free-port.ts";
import { boundedTarget, progress, type Section } from "./report.ts";
import { formatSpread, spread } from "./stats.ts";

/*
 * What a refresh the extension finishes after the function has answered costs a 128 MB function:
 * invocations with nothing due beside invocations in the default token's advisory window, whose
 * refresh ahead the extension holds `event/next` for (lambda-extension/refresh-hold.ts).
 */

const handlerPath = fileURLToPath(new URL("lambda-refresh-hold-handler.ts", import.meta.url));
const minute = 60_000;
const memoryMb = 128;
/** Hour-long tokens: their advisory window opens 13.2 to 15 minutes before expiry. */
const lifetimeSeconds = 3_600;

type Figures = Pick<InvokeResult, "durationMs" | "postRuntimeExtensionsDurationMs" | "billedDurationMs">;

export interface RefreshHoldRun {
  /** Invocations with nothing due. */
  readonly idle: Figures[];
  /** Invocations in the advisory window: a refresh ahead held after the function answered. */
  readonly held: Figures[];
  readonly latencyMs: number;
  readonly sandboxes: number;
}

function figures(result: InvokeResult): Figures {
  payloadOf(result); // a failed invocation throws with its outcome
  const { durationMs, postRuntimeExtensionsDurationMs, billedDurationMs } = result;
  return { durationMs, postRuntimeExtensionsDurationMs, billedDurationMs };
}

/**
 * `sandboxes` fresh 128 MB sandboxes (nodejs layer, impersonating), each invoked `cycles` times 2
 * minutes after a refresh (nothing due) and 48 minutes after it (the advisory window of the token
 * it got), the sandbox frozen in between while its clock and the cloud's move on.
 */
export async function benchRefreshHold(
  layer: Layer,
  sandboxes: number,
  cycles: number,
  latencyMs: number,
): Promise<RefreshHoldRun> {
  const run: RefreshHoldRun = { idle: [], held: [], latencyMs, sandboxes };
  const bundle = await bundleFunction(handlerPath);
  try {
    for (let sandbox = 0; sandbox < sandboxes; sandbox += 1) {
      progress(`refresh hold ${sandbox + 1}/${sandboxes}`);
      const root = await mkdtemp(join(tmpdir(), "bench-hold-"));
      const clockFile = join(root, "clock-offset");
      await writeFile(clockFile, "+0\n");
      const cloud = await startMovedCloud(clockFile, lifetimeSeconds, latencyMs);
      let lambda: LocalLambda | undefined;
      try {
        lambda = await LocalLambda.start({
          layers: [layer.zipPath],
          taskRoot: bundle.taskRoot,
          handler: bundle.handler,
          memoryMb,
          shiftableClock: true,
          clockFile,
          environment: {
            ...cloud.env,
            BROKER_PORT: String(await freePort()),
            BROKER_OPS_HOST: "127.0.0.1",
            BROKER_OPS_PORT: String(await freePort()),
          },
        });
        figures(await lambda.invoke({}));
        for (let cycle = 0; cycle < cycles; cycle += 1) {
          await lambda.advanceClock(2 * minute);
          run.idle.push(figures(await lambda.invoke({})));
          await lambda.advanceClock(46 * minute);
          run.held.push(figures(await lambda.invoke({})));
        }
      } finally {
        await lambda?.close();
        cloud.kill();
        await rm(root, { recursive: true, force: true });
      }
    }
    return run;
  } finally {
    await bundle.remove();
  }
}

export function refreshHoldSection(run: RefreshHoldRun): Section {
  const row = (label: string, samples: readonly Figures[]) => [
    label,
    formatSpread(spread(samples.map((sample) => sample.durationMs)), 1),
    formatSpread(spread(samples.map((sample) => sample.postRuntimeExtensionsDurationMs)), 1),
    formatSpread(spread(samples.map((sample) => sample.billedDurationMs))),
  ];
  const median = (samples: readonly Figures[], figure: keyof Figures) =>
    spread(samples.map((sample) => sample[figure])).median;
  return {
    title: "Refresh hold: what a refresh ahead costs a 128 MB function's invocation",
    command: "npm run bench:lambda",
    method: [
      `${run.sandboxes} local Lambda sandboxes at ${memoryMb} MB (nodejs layer, service-account impersonation,`,
      "a function that asks for no token), frozen between invocations while their wall clock and the",
      "hermetic cloud's move on (one libfaketime offset). Each is invoked 2 minutes after its token was",
      "refreshed (nothing due) and 48 minutes after (the token's advisory window: the extension starts",
      "its refresh once `platform.runtimeDone` says the function has answered and holds `event/next`",
      `until it is in, at most ${lambdaRefreshHold.budgetMs} ms). Every upstream call slowed by ${run.latencyMs} ms.`,
      "Function latency: event delivered → the runtime's answer; after the answer: until the",
      "extension's next `event/next` (PostRuntimeExtensionsDuration); billed: the invoke phase,",
      "rounded up to the millisecond, as the REPORT line's Billed Duration.",
    ].join(" "),
    tables: [
      {
        header: ["invocation", "function latency, ms", "after the answer, ms", "billed, ms"],
        rows: [row("nothing due", run.idle), row("a refresh ahead held", run.held)],
      },
    ],
    targets: [
      boundedTarget(`a held refresh ends within the hold's budget (${lambdaRefreshHold.budgetMs} ms)`, {
        figure: spread(run.held.map((sample) => sample.postRuntimeExtensionsDurationMs)).max,
        bound: lambdaRefreshHold.budgetMs,
        unit: "ms",
        digits: 1,
        detail: "the longest",
      }),
    ],
    notes: [
      `Billed time added per refresh (medians): ${(median(run.held, "billedDurationMs") - median(run.idle, "billedDurationMs")).toFixed(0)} ms, once per token lifetime and key in use;`,
      `function latency added (medians): ${(median(run.held, "durationMs") - median(run.idle, "durationMs")).toFixed(1)} ms.`,
    ],
  };
}
