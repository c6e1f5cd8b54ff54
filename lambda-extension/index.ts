import { runExtension } from "./lifecycle.ts";

/*
 * Entry of the extension bundle. The launcher `/opt/extensions/<name>` passes its own file name
 * as the first argument: Lambda matches the registration against that name.
 */
const name = process.argv[2];
if (name === undefined || name === "") {
  process.stderr.write("token-broker extension: start it through its launcher in /opt/extensions\n");
  process.exit(2);
}
const code = await runExtension({ env: process.env, name });
// Idle keep-alive sockets (AWS SDK, Google STS) would hold the event loop open; Lambda counts the
// shutdown until the process is gone.
process.exit(code);
