import { get } from "node:http";
import packageJson from "../package.json" with { type: "json" };
import { loadConfig } from "./config.ts";
import { defaults, helpText, rawValue } from "./config-variables.ts";
import { isBrokerError } from "./errors.ts";
import { start } from "./main.ts";
import { healthcheckTimeoutMs, shutdownDeadline } from "./policy.ts";

/*
 * `token-broker`: the sidecar in the foreground. Exit codes: 0 after a clean stop, 2 for bad
 * configuration or a listener that cannot bind (one line on stderr naming the variable), 1 when
 * it cannot start otherwise. `token-broker doctor` checks the federation chain (broker/doctor/cli.ts).
 */

const optionsHelp = [
  "Options:",
  "  --help         this text",
  "  --version      the token-broker version",
  "  --healthcheck  probe a running broker's /healthz (BROKER_OPS_HOST, BROKER_OPS_PORT): exit 0 if",
  "                 healthy, else 1 with the reason on stderr; for container health checks",
].join("\n");

/**
 * `--healthcheck`: the container health probe, so images need no curl or shell. It asks the ops
 * listener where the broker's settings put it; a wildcard address is reached on loopback.
 */
async function healthcheck(env: NodeJS.ProcessEnv): Promise<number> {
  const port = rawValue(env, "BROKER_OPS_PORT") ?? defaults.BROKER_OPS_PORT;
  const host = rawValue(env, "BROKER_OPS_HOST") ?? defaults.BROKER_OPS_HOST;
  const target = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  const failure = await probe(`http://${target}:${port}/healthz`, `${target}:${port}`);
  if (failure === undefined) return 0;
  process.stderr.write(`token-broker --healthcheck: ${failure}\n`);
  return 1;
}

/**
 * One GET of `url`: undefined on a 2xx, else why not, in one line. node:http rather than fetch,
 * whose errors hide the socket's reason (refused, reset) in a `cause`.
 */
function probe(url: string, where: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const request = get(url, { signal: AbortSignal.timeout(healthcheckTimeoutMs) }, (response) => {
      response.resume();
      const status = response.statusCode ?? 0;
      resolve(status >= 200 && status < 300 ? undefined : `${url} answered status ${status}`);
    });
    request.on("error", (error: NodeJS.ErrnoException) => {
      if (error.name === "AbortError") {
        resolve(`timeout: ${url} did not answer within ${healthcheckTimeoutMs / 1000} s`);
      } else if (error.code === "ECONNREFUSED") {
        resolve(
          `connection refused on ${where}: no broker listens there (BROKER_OPS_HOST and BROKER_OPS_PORT must match the broker's)`,
        );
      } else {
        resolve(`${url} failed: ${error.code ?? error.message}`);
      }
    });
  });
}

async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (argv[0] === "doctor") {
    // Loaded only for the subcommand: the sidecar itself never reads the doctor.
    const { doctor } = await import("./doctor/cli.ts");
    process.exitCode = await doctor(argv.slice(1), env);
    return;
  }
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${helpText()}\n\n${optionsHelp}\n`);
    return;
  }
  if (argv.includes("--version")) {
    process.stdout.write(`${packageJson.version}\n`);
    return;
  }
  if (argv.includes("--healthcheck")) {
    process.exitCode = await healthcheck(env);
    return;
  }
  const unknown = argv.filter((arg) => arg !== "");
  if (unknown.length > 0) {
    process.stderr.write(
      `token-broker: unknown argument ${unknown[0]}; settings come from the environment (see --help)\n`,
    );
    process.exitCode = 2;
    return;
  }

  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(env);
  } catch (error) {
    process.stderr.write(`token-broker: ${isBrokerError(error) ? error.message : String(error)}\n`);
    process.exitCode = 2;
    return;
  }

  let broker: Awaited<ReturnType<typeof start>>;
  try {
    broker = await start(config);
  } catch (error) {
    process.stderr.write(`token-broker: ${isBrokerError(error) ? error.message : "could not start"}\n`);
    // A listener that cannot bind is a setting to change (CONFIG_INVALID), like a bad value.
    process.exitCode = isBrokerError(error) && error.code === "CONFIG_INVALID" ? 2 : 1;
    return;
  }
  broker.prewarm();
  // The sidecar is never frozen: a timer refreshes every token in use before a client needs it.
  const stopRefreshAhead = broker.refreshAhead();

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    stopRefreshAhead();
    // Exit once the listeners are closed: idle upstream keep-alive sockets would otherwise hold
    // the process. The timer keeps the deadline whatever the close does.
    const exit = () => process.exit(0);
    setTimeout(exit, shutdownDeadline.deadlineMs).unref();
    void broker.close(shutdownDeadline.deadlineMs - shutdownDeadline.exitMarginMs).then(exit);
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

await main(process.argv.slice(2), process.env);
