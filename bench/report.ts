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
