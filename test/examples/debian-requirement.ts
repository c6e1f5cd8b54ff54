import type { TestContext } from "vitest";

/**
 * An example that needs a Debian package this machine lacks: in CI, which installs them all
 * (.ci/run), the test fails; elsewhere it is skipped, naming the install line.
 */
export function requireDebian(context: TestContext, unavailable: string | undefined, install: string): void {
  if (unavailable === undefined) return;
  const reason = `${unavailable}; install with: apt-get install ${install}`;
  if (process.env.CI === "true") throw new Error(reason);
  context.skip(reason);
}
