/** The upstream steps of one token chain, in order. */
export type UpstreamStep = "aws_sts" | "google_sts" | "impersonation";

/** How an upstream call ended; `throttled`: a rate quota of the caller's was spent. */
export type UpstreamOutcome = "success" | "error" | "timeout" | "throttled";
