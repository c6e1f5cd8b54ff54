import { describe, expect, it } from "vitest";
import { Ledger } from "./cloud/ledger.ts";
import { demoWorld } from "./cloud/world.ts";
import { secretScan } from "./support/secret-scan.ts";

/** The leak check every suite relies on must itself fail on a leak, or its silence means nothing. */

const accessToken = "ya29.d.Q2hhbmdlIHRoaXMgdG9rZW4gYW5kIHRoZSB0ZXN0IHN0aWxsIGhvbGRzIHVwIGZpbmU";
const jwt =
  "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhcm46YXdzOmlhbTo6MTIzNDU2Nzg5MDEyOnJvbGUveCJ9.c2lnbmF0dXJlLW9mLXRoZS1hd3Mtand0LXdpdGgtZW5vdWdoLWxlbmd0aC10by1tYXR0ZXI";

function cloudWithSecrets() {
  const ledger = new Ledger();
  ledger.recordAccessToken({
    token: accessToken,
    principal: { kind: "serviceAccount", email: "sa@demo-project.iam.gserviceaccount.com" },
    scopes: ["https://www.googleapis.com/auth/cloud-platform"],
    expiresAtMs: Date.now() + 3_600_000,
    issuedBy: "iam-credentials",
  });
  ledger.recordSecret("aws-sts", jwt);
  return { ledger, world: demoWorld };
}

function failureOf(capture: (scan: ReturnType<typeof secretScan>) => void): string {
  const scan = secretScan();
  capture(scan);
  try {
    scan.assertClean(cloudWithSecrets());
  } catch (error) {
    return (error as Error).message;
  }
  return "clean";
}

describe("secretScan", () => {
  it("passes text that holds none of the cloud's secrets", () => {
    expect(failureOf((scan) => scan.capture("log", '{"msg":"token served","token":"[redacted]"}'))).toBe(
      "clean",
    );
  });

  it("finds a whole access token, names where, and does not print it", () => {
    const message = failureOf((scan) => scan.capture("503 body", `refused: ${accessToken}`));
    expect(message).toContain("iam-credentials secret (whole) in 503 body");
    expect(message).not.toContain(accessToken.slice(7, 23));
  });

  it("finds a token cut short, and the signature of a JWT alone", () => {
    expect(failureOf((scan) => scan.capture("log", `token=${accessToken.slice(0, 30)}…`))).toContain(
      "iam-credentials secret (fragment) in log",
    );
    expect(failureOf((scan) => scan.capture("log", `sig ${jwt.split(".")[2]}`))).toContain(
      "aws-sts secret (fragment) in log",
    );
  });

  it("finds the world's AWS secret access keys, written through a sink", () => {
    const message = failureOf((scan) => {
      scan.sink("broker log").write(`{"secretAccessKey":"${demoWorld.awsPrincipals[1]?.secretAccessKey}"}\n`);
    });
    expect(message).toContain("aws-credentials secret (whole) in broker log");
  });

  it("refuses to pass when nothing was captured or the cloud issued nothing", () => {
    expect(failureOf(() => undefined)).toBe(
      "secret scan: nothing was captured from the broker, so nothing was scanned",
    );
    const scan = secretScan();
    scan.capture("log", "something");
    expect(() => scan.assertClean({ ledger: new Ledger(), world: demoWorld })).toThrow(
      "secret scan: the cloud issued no secret, so there was nothing to look for",
    );
  });
});
