/*
 * BENCHMARK FUNCTION (bench:lambda, refresh hold). Asks for no token: what an invocation costs
 * with and without a refresh the extension finishes after the function has answered.
 */
export async function handler(): Promise<{ nowMs: number }> {
  return { nowMs: Date.now() };
}
