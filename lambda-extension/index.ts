import { type CodeCacheStatus, runExtension } from "./lifecycle.ts";

/** How the loader started us: the launcher's file name (Lambda registers by it) and the code cache outcome. */
export interface Startup {
  readonly name: string;
  readonly codeCache: CodeCacheStatus;
}

/** Entry of the extension bundle, called by the loader (`start.cjs`) once the bundle is evaluated. */
export function main(startup: Startup): void {
  if (startup.name === "") {
    process.stderr.write("token-broker extension: start it through its launcher in /opt/extensions\n");
    process.exit(2);
  }
  void runExtension({ env: process.env, name: startup.name, codeCache: startup.codeCache }).then((code) => {
    // Idle keep-alive sockets (AWS SDK, Google STS) would hold the event loop open, and Lambda
    // counts the shutdown until the process is gone.
    process.exit(code);
  });
}
