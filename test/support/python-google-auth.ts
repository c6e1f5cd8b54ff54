import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/** A Python interpreter that can import google-auth with its requests transport. */
export interface PythonGoogleAuth {
  readonly label: string;
  readonly python: string;
  readonly env: Readonly<Record<string, string>>;
}

const gcloudRoot = "/usr/lib/google-cloud-sdk";

/**
 * PyPI is out of reach here, so the candidates are the ones a machine can carry: the google-auth
 * that the gcloud CLI bundles with its own Python (a current 2.x), and Debian's
 * python3-google-auth (1.x, installed by .ci/run).
 */
const candidates: readonly PythonGoogleAuth[] = [
  {
    label: "google-auth bundled with the gcloud CLI",
    python: `${gcloudRoot}/platform/bundledpythonunix/bin/python3`,
    env: { PYTHONPATH: `${gcloudRoot}/lib/third_party` },
  },
  { label: "Debian python3-google-auth", python: "/usr/bin/python3", env: {} },
];

function works(candidate: PythonGoogleAuth): string | undefined {
  if (!existsSync(candidate.python)) return `${candidate.python} does not exist`;
  const probe = spawnSync(candidate.python, ["-c", "import google.auth, google.auth.transport.requests"], {
    env: { ...candidate.env, PATH: "/usr/bin:/bin" },
    encoding: "utf8",
    timeout: 20_000,
  });
  return probe.status === 0 ? undefined : (probe.stderr.trim().split("\n").at(-1) ?? "import failed");
}

/** Every candidate, each either usable or with the reason it is not. */
export function pythonGoogleAuths(): { candidate: PythonGoogleAuth; unavailable: string | undefined }[] {
  return candidates.map((candidate) => ({ candidate, unavailable: works(candidate) }));
}
