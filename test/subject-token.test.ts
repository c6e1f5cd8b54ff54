import { describe, expect, it } from "vitest";
import { BrokerError } from "../broker/errors.ts";
import { CachedSubjectToken, type SubjectToken, type SubjectTokenSource } from "../broker/subject-token.ts";
import { FakeClock, settle } from "./support/fake-clock.ts";

/** A minting source whose mints the test completes by hand, each seeing its own signal. */
class ManualMints implements SubjectTokenSource {
  readonly call = "AWS STS GetWebIdentityToken";
  readonly mints: {
    signal: AbortSignal;
    resolve: (token: SubjectToken) => void;
    reject: (e: unknown) => void;
  }[] = [];

  subjectToken(signal: AbortSignal): Promise<SubjectToken> {
    return new Promise((resolve, reject) => {
      this.mints.push({ signal, resolve, reject });
      signal.addEventListener("abort", () => reject(new BrokerError("UPSTREAM_TIMEOUT", "aborted")));
    });
  }
}

function setup() {
  const clock = new FakeClock();
  const source = new ManualMints();
  return { clock, source, cached: new CachedSubjectToken(source, clock) };
}

describe("the cached AWS JWT", () => {
  it("is minted once for concurrent chains and reused until it has under a minute left", async () => {
    const { clock, source, cached } = setup();
    const waits = [1, 2, 3].map(() => cached.subjectToken(new AbortController().signal));
    expect(source.mints).toHaveLength(1);
    source.mints[0]?.resolve({ token: "jwt-1", expiresAtMs: clock.now() + 300_000 });
    expect((await Promise.all(waits)).map((jwt) => jwt.token)).toEqual(["jwt-1", "jwt-1", "jwt-1"]);
    await clock.advance(240_000);
    expect((await cached.subjectToken(new AbortController().signal)).token).toBe("jwt-1");
    await clock.advance(1);
    const next = cached.subjectToken(new AbortController().signal);
    expect(source.mints).toHaveLength(2);
    source.mints[1]?.resolve({ token: "jwt-2", expiresAtMs: clock.now() + 300_000 });
    expect((await next).token).toBe("jwt-2");
  });

  it("lets a chain stop waiting without cancelling the mint others wait on; cancels it when nobody waits", async () => {
    const { source, cached } = setup();
    const first = new AbortController();
    const second = new AbortController();
    const firstWait = cached.subjectToken(first.signal);
    const secondWait = cached.subjectToken(second.signal);
    first.abort();
    await expect(firstWait).rejects.toThrow("AWS STS GetWebIdentityToken did not answer in time");
    await settle();
    expect(source.mints[0]?.signal.aborted).toBe(false);
    second.abort();
    await expect(secondWait).rejects.toMatchObject({ code: "UPSTREAM_TIMEOUT" });
    expect(source.mints[0]?.signal.aborted).toBe(true);
  });

  it("does not remember a failed mint, and forgets a JWT Google refused", async () => {
    const { clock, source, cached } = setup();
    const failing = cached.subjectToken(new AbortController().signal);
    source.mints[0]?.reject(new BrokerError("AWS_STS_UNAVAILABLE", "down"));
    await expect(failing).rejects.toMatchObject({ code: "AWS_STS_UNAVAILABLE" });
    const retried = cached.subjectToken(new AbortController().signal);
    source.mints[1]?.resolve({ token: "jwt-2", expiresAtMs: clock.now() + 300_000 });
    expect((await retried).token).toBe("jwt-2");
    cached.reject("another");
    expect((await cached.subjectToken(new AbortController().signal)).token).toBe("jwt-2");
    cached.reject("jwt-2");
    void cached.subjectToken(new AbortController().signal);
    expect(source.mints).toHaveLength(3);
  });
});
