import type { Writable } from "node:stream";
import type { Ledger, SecretSource } from "../cloud/ledger.ts";
import type { World } from "../cloud/world.ts";
import { captureLog } from "./capture-log.ts";

/**
 * The one leak check of the test suites: everything a suite captured from the broker (log lines,
 * `/metrics` texts, error bodies) is searched for every secret the hermetic cloud issued or holds.
 *
 *   const scan = secretScan();
 *   start(config, { logger: createLogger("debug", scan.sink("broker log")) });
 *   scan.capture("GET /metrics", text);
 *   afterAll(() => scan.assertClean(cloud));
 *
 * Besides whole values it looks for the head and the tail of each secret's random part, so a
 * token cut short by a log line or an error message (`ya29.d.AbC…`) is caught as well.
 */
export interface SecretScan {
  /** Keeps `text` to be scanned; `where` names it in a failure (e.g. "503 body of /token"). */
  capture(where: string, text: string): void;
  /** A stream to give the broker's logger (or a child's stdout), captured as `where`. */
  sink(where: string): Writable;
  /**
   * Fails, naming source, place and a masked excerpt, if any secret of `cloud` occurs in what was
   * captured. Also fails when nothing was captured or the cloud issued nothing: such a scan
   * would pass without having proved anything.
   */
  assertClean(cloud: { readonly ledger: Ledger; readonly world: World }): void;
}

/** A secret known to the scan, with the pieces that identify it even when truncated. */
interface KnownSecret {
  readonly source: SecretSource | "aws-credentials";
  readonly value: string;
  readonly fragments: readonly string[];
}

/** Long enough that a random base64url fragment never occurs by chance (96 bits). */
const fragmentLength = 16;

/**
 * The part of a secret that is random: the signature of a JWT, the text after the `ya29.x.`
 * prefix of an access token, a whole AWS secret key. Headers and prefixes are shared by every
 * token of a kind, so matching them would report harmless text.
 */
function randomPart(value: string): string {
  const jwtParts = value.split(".");
  if (jwtParts.length === 3 && value.startsWith("eyJ")) return jwtParts[2] ?? value;
  const prefixed = /^ya29\.[a-z]\.(.+)$/.exec(value);
  return prefixed?.[1] ?? value;
}

function known(source: KnownSecret["source"], value: string): KnownSecret {
  const part = randomPart(value);
  const fragments =
    part.length >= 2 * fragmentLength ? [part.slice(0, fragmentLength), part.slice(-fragmentLength)] : [part];
  return { source, value, fragments };
}

/** A few characters each side of the hit, with the secret itself masked. */
function excerpt(text: string, index: number, match: string): string {
  const before = text.slice(Math.max(0, index - 60), index);
  const after = text.slice(index + match.length, index + match.length + 60);
  return JSON.stringify(`${before}<${match.length} secret chars>${after}`);
}

export function secretScan(): SecretScan {
  // A sink is read whole at assertClean, so a secret split across two writes is still found.
  const captured: { where: string; text: () => string }[] = [];

  return {
    capture: (where, text) => {
      captured.push({ where, text: () => text });
    },
    sink: (where) => {
      const log = captureLog();
      captured.push({ where, text: log.text });
      return log.stream;
    },
    assertClean: ({ ledger, world }) => {
      const secrets = [
        ...ledger.secrets().map(({ source, value }) => known(source, value)),
        ...world.awsPrincipals.map((principal) => known("aws-credentials", principal.secretAccessKey)),
      ];
      if (ledger.secrets().length === 0) {
        throw new Error("secret scan: the cloud issued no secret, so there was nothing to look for");
      }
      const texts = captured.map(({ where, text }) => ({ where, text: text() }));
      if (texts.every(({ text }) => text === "")) {
        throw new Error("secret scan: nothing was captured from the broker, so nothing was scanned");
      }
      const leaks: string[] = [];
      for (const { where, text } of texts) {
        for (const secret of secrets) {
          const match = [secret.value, ...secret.fragments].find((piece) => text.includes(piece));
          if (match === undefined) continue;
          const extent = match === secret.value ? "whole" : "fragment";
          leaks.push(
            `${secret.source} secret (${extent}) in ${where}: ${excerpt(text, text.indexOf(match), match)}`,
          );
        }
      }
      if (leaks.length > 0) {
        throw new Error(`secret scan: ${leaks.length} leak(s)\n${leaks.join("\n")}`);
      }
    },
  };
}
