import type { BrokerErrorCode } from "../errors.ts";
import { doctorCheckTimeoutMs } from "../policy.ts";
import {
  type Check,
  type CheckResult,
  type DoctorReport,
  type Fact,
  type Facts,
  fail,
  type Given,
  givenFacts,
} from "./check.ts";

/*
 * Walks the checks in order, each once, and stops at the first that fails: what comes after it
 * cannot be judged. The order is checked when the runner is built: a check runs only on facts
 * given or provided before it, each fact and each explained error code has one owner.
 */

export class ChainRunner {
  readonly #checks: readonly Check[];

  constructor(checks: readonly Check[]) {
    const known = new Set<Fact>(givenFacts);
    const ids = new Set<string>();
    const codes = new Set<BrokerErrorCode>();
    for (const check of checks) {
      if (ids.has(check.id)) throw new Error(`doctor: two checks are named ${check.id}`);
      ids.add(check.id);
      const missing = check.needs.filter((fact) => !known.has(fact));
      if (missing.length > 0) {
        throw new Error(`doctor: ${check.id} needs ${missing.join(", ")}, which no check before it provides`);
      }
      for (const fact of check.provides) {
        if (known.has(fact)) throw new Error(`doctor: ${check.id} provides ${fact}, which is known already`);
        known.add(fact);
      }
      for (const code of check.explains?.codes ?? []) {
        if (codes.has(code))
          throw new Error(`doctor: ${check.id} explains ${code}, which another check does`);
        codes.add(code);
      }
    }
    this.#checks = checks;
  }

  /** The check whose link a broker failure with this code breaks, if any explains it. */
  explaining(code: BrokerErrorCode): Check | undefined {
    return this.#checks.find((check) => check.explains?.codes.includes(code) === true);
  }

  async run(given: Given): Promise<DoctorReport> {
    const facts: Partial<Facts> = { ...given };
    const results: CheckResult[] = [];
    let blockedBy: string | undefined;
    for (const check of this.#checks) {
      const { id } = check;
      if (blockedBy !== undefined) {
        results.push({ id, status: "skip", detail: `blocked by ${blockedBy}` });
        continue;
      }
      const signal = AbortSignal.timeout(doctorCheckTimeoutMs);
      let outcome: Awaited<ReturnType<Check["run"]>>;
      try {
        outcome = await check.run(facts, signal);
      } catch (error) {
        // A bug or an unexpected library failure: name its class only, never its message (it may quote a body).
        const kind = error instanceof Error ? error.name : typeof error;
        outcome = signal.aborted
          ? fail(
              `no answer within ${doctorCheckTimeoutMs} ms`,
              "check network access to the service this link calls",
            )
          : fail(`the check failed unexpectedly (${kind})`, "run the doctor again; report it if it persists");
      }
      if (outcome.status === "fail") {
        results.push({ id, status: "fail", detail: outcome.detail, fix: outcome.fix });
        blockedBy = id;
      } else {
        results.push({ id, status: outcome.status, detail: outcome.detail });
        Object.assign(facts, outcome.provided);
      }
    }
    return { ok: blockedBy === undefined, checks: results };
  }
}
