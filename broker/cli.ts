import { loadConfig } from "./config.ts";
import { defaults, helpText, rawValue } from "./config-variables.ts";
import { isBrokerError } from "./errors.ts";
import { start } from "./main.ts";
import { healthcheckTimeoutMs, shutdownDeadline } from "./policy.ts";

/*
 * `token-broker`: the sidecar in the foreground. Exit codes: 0 after a clean stop, 2 for bad
 * configuration (one line on stderr naming the variable), 1 when it cannot start otherwise.
 * `token-broker doctor` checks the federation chain instead (broker/doctor/cli.ts).
 */

/**
 * `--healthcheck`: the container health probe, so images need no curl or shell. It asks the ops
 * listener where the broker's settings put it; a wildcard address is reached on loopback.
 */
async function healthcheck(env: NodeJS.ProcessEnv): Promise<number> {
  const port = rawValue(env, "BROKER_OPS_PORT") ?? defaults.BROKER_OPS_PORT;
  const host = rawValue(env, "BROKER_OPS_HOST") ?? defaults.BROKER_OPS_HOST;
  const target = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  try {
    const response = await fetch(`http://${target}:${port}/healthz`, {
      signal: AbortSignal.timeout(healthcheckTimeoutMs),
    });
    return response.ok ? 0 : 1;
  } catch {
    return 1;
  }
}

async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (argv[0] === "doctor") {
    // Loaded only for the subcommand: the sidecar itself never reads the doctor.
    const { doctor } = await import("./doctor/cli.ts");
    process.exitCode = await doctor(argv.slice(1), env);
    return;
  }
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${helpText()}\n`);
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
    process.exitCode = 1;
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
