/** The upstream steps of one token chain, in order; `downscoping` applies BROKER_ACCESS_BOUNDARY. */
export const upstreamSteps = ["aws_sts", "google_sts", "impersonation", "downscoping"] as const;
export type UpstreamStep = (typeof upstreamSteps)[number];

/** How an upstream call ended; `throttled`: a rate quota of the caller's was spent. */
export type UpstreamOutcome = "success" | "error" | "timeout" | "throttled";
