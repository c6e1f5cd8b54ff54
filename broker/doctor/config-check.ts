import { defaults, loadConfig, parseUrl } from "../config.ts";
import { isBrokerError } from "../errors.ts";
import { type DoctorEndpoints, defineCheck, fail, type Given, pass } from "./check.ts";

function doctorEndpoints(env: Given["env"]): DoctorEndpoints {
  const url = (name: "BROKER_GOOGLE_IAM_URL" | "BROKER_STORAGE_URL" | "BROKER_BIGQUERY_URL") =>
    parseUrl(name, env[name]?.trim() || defaults[name], defaults[name]);
  return {
    googleIamUrl: url("BROKER_GOOGLE_IAM_URL"),
    storageUrl: url("BROKER_STORAGE_URL"),
    bigqueryUrl: url("BROKER_BIGQUERY_URL"),
  };
}

/** The broker's own settings and validation; a failure here is bad usage (exit 2). */
export const configCheck = defineCheck({
  id: "config",
  needs: ["env"],
  provides: ["config", "endpoints"],
  async run({ env }) {
    try {
      const config = loadConfig(env);
      const endpoints = doctorEndpoints(env);
      const impersonation =
        config.serviceAccount === undefined
          ? "direct federated access"
          : `impersonating ${config.serviceAccount}`;
      const warnings = config.warnings.length === 0 ? "" : `; ${config.warnings.join("; ")}`;
      return pass(`${config.audience}, ${impersonation}, AWS region ${config.awsRegion}${warnings}`, {
        config,
        endpoints,
      });
    } catch (error) {
      if (!isBrokerError(error)) throw error;
      return fail(error.message, "correct the setting named above (token-broker --help lists them all)");
    }
  },
});
