import { expect } from "vitest";

/** The error `pending` fails with, an instance of `kind`; the test fails if it succeeds or fails otherwise. */
export async function rejectionOf<E>(
  pending: Promise<unknown>,
  kind: abstract new (...args: never[]) => E,
): Promise<E> {
  const error = await pending.then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(kind);
  return error as E;
}
