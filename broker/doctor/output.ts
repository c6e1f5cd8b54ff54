import { styleText } from "node:util";
import type { CheckResult, CheckStatus, DoctorReport } from "./check.ts";

const marks: Readonly<Record<CheckStatus, { mark: string; colour: "green" | "red" | "gray" }>> = {
  pass: { mark: "✓", colour: "green" },
  fail: { mark: "✗", colour: "red" },
  skip: { mark: "–", colour: "gray" },
};

/** One line per check (and its fix under a failure); colour only when `colour` says so. */
export function humanReport(report: DoctorReport, colour: boolean): string {
  const paint = (style: Parameters<typeof styleText>[0], text: string) =>
    colour ? styleText(style, text, { validateStream: false }) : text;
  const width = Math.max(...report.checks.map((check) => check.id.length));
  const lines = report.checks.flatMap((check: CheckResult) => {
    const { mark, colour: tint } = marks[check.status];
    const line = `${paint(tint, mark)} ${check.id.padEnd(width)}  ${check.detail}`;
    return check.fix === undefined
      ? [line]
      : [line, `  ${" ".repeat(width)}  ${paint("bold", "fix:")} ${check.fix}`];
  });
  const failed = report.checks.find((check) => check.status === "fail");
  const summary =
    failed === undefined
      ? "every link of the chain holds"
      : `the chain breaks at ${failed.id}; the links after it were not checked`;
  return `${lines.join("\n")}\n\n${summary}\n`;
}

/** `{"ok": bool, "checks": [{"id", "status", "detail", "fix"?}]}` */
export function jsonReport(report: DoctorReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** 0 when nothing failed, 2 when the settings themselves are invalid, 1 for any other failed link. */
export function exitCode(report: DoctorReport): number {
  const failed = report.checks.find((check) => check.status === "fail");
  if (failed === undefined) return 0;
  return failed.id === "config" ? 2 : 1;
}
