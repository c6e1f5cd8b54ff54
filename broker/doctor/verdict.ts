import type { STSClient } from "@aws-sdk/client-sts";
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";
import { runDoctor } from "./run.ts";

/**
 * In Lambda and ECS nobody runs a command: when the broker's first chain fails, it runs the doctor
 * once with its own settings and logs the verdict as one line, next to the failure it explains.
 */
export async function logVerdict(config: Config, logger: Logger, sts: STSClient | undefined): Promise<void> {
  const report = await runDoctor({ env: process.env, config, ...(sts === undefined ? {} : { sts }) });
  const failed = report.checks.find((check) => check.status === "fail");
  if (failed === undefined) {
    logger.info(
      { doctor: { ok: true } },
      "doctor: every link of the chain holds now; the first failure was transient",
    );
    return;
  }
  logger.error(
    { doctor: { ok: false, check: failed.id, detail: failed.detail, fix: failed.fix } },
    `doctor: the chain breaks at ${failed.id}: ${failed.detail}; fix: ${failed.fix}`,
  );
}
