import { formatNumber } from "./stats.ts";

/*
 * What each benchmark hands back: one section of BENCHMARKS.md. The same section prints to the
 * terminal when a benchmark runs on its own (`npm run bench:serve`), so both show the same figures.
 */

export interface Table {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

/** A claim from the issues checked against this run's figures. */
export interface Target {
  readonly claim: string;
  readonly met: boolean;
  /** The figure the claim was judged on. */
  readonly measured: string;
}

/** A figure judged against a bound computed from this run's floors. */
export interface Bounded {
  readonly figure: number;
  readonly bound: number;
  /** How the bound was computed from this run's floors ("the bare extension's N ms + 10 ms"); none for a fixed budget. */
  readonly derivation?: string;
  readonly unit: "ms" | "MB";
  readonly digits?: number;
  /** What the figure is: "median of paired differences". */
  readonly detail: string;
}

/** "figure ≤ bound", stated with the bound's derivation and the figure's distance from it. */
export function boundedTarget(claim: string, bounded: Bounded): Target {
  const { figure, bound, derivation, unit, digits = 0, detail } = bounded;
  const format = (value: number) => `${formatNumber(value, digits)} ${unit}`;
  const met = figure <= bound;
  return {
    claim,
    met,
    measured: `${format(figure)} (${detail}) against ${derivation === undefined ? "" : `${derivation} = `}${format(bound)}: ${format(Math.abs(bound - figure))} ${met ? "under" : "over"}`,
  };
}

export interface Section {
  readonly title: string;
  /** The command that produces this section on its own. */
  readonly command: string;
  /** How the figures were made: setup, baseline, repetitions. */
  readonly method: string;
  readonly tables: readonly Table[];
  readonly targets: readonly Target[];
  readonly notes: readonly string[];
}

export function markdownTable(table: Table): string {
  const escapeCell = (cell: string) => cell.replaceAll("|", "\\|");
  return [
    `| ${table.header.map(escapeCell).join(" | ")} |`,
    `|${table.header.map(() => "---").join("|")}|`,
    ...table.rows.map((row) => `| ${row.map(escapeCell).join(" | ")} |`),
  ].join("\n");
}

function textTable(table: Table): string {
  const rows = [table.header, ...table.rows];
  const widths = table.header.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0)));
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

function targetLine(target: Target): string {
  return `${target.met ? "met" : "NOT MET"}: ${target.claim} (measured: ${target.measured})`;
}

export function sectionMarkdown(section: Section): string {
  return [
    `## ${section.title}`,
    "",
    `Command: \`${section.command}\``,
    "",
    section.method,
    "",
    ...section.tables.flatMap((table) => [markdownTable(table), ""]),
    ...(section.targets.length === 0
      ? []
      : ["Targets:", "", ...section.targets.map((target) => `- ${targetLine(target)}`), ""]),
    ...(section.notes.length === 0 ? [] : [...section.notes.map((note) => `- ${note}`), ""]),
  ].join("\n");
}

export function printSection(section: Section): void {
  const lines = [
    `== ${section.title}`,
    `   ${section.command}`,
    "",
    ...section.tables.flatMap((table) => [textTable(table), ""]),
    ...section.targets.map(targetLine),
    ...section.notes.map((note) => `note: ${note}`),
    "",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** Progress for whoever watches a long run; stderr, so the figures on stdout stay clean. */
export function progress(message: string): void {
  process.stderr.write(`  … ${message}\n`);
}
