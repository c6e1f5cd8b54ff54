import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * One fault a fake can be told to inject. `times` limits it to the next N requests (default:
 * until cleared). Status faults answer with the service's own error envelope, written by the fake.
 */
export type Fault =
  | { kind: "status"; status: number; times?: number }
  | { kind: "throttle"; times?: number }
  | { kind: "slow"; ms: number; times?: number }
  | { kind: "hang"; times?: number }
  | { kind: "reset"; times?: number }
  | { kind: "malformed"; times?: number };

/** What the fake must do for this request, decided before it does any work. */
export type FaultDecision =
  | { action: "none" }
  | { action: "delay"; ms: number }
  | { action: "respond"; fault: Extract<Fault, { kind: "status" | "throttle" | "malformed" }> }
  | { action: "hang" }
  | { action: "reset" };

/** Per-service fault switch. Tests call `inject`/`clear`; the fake calls `apply` first on each request. */
export class FaultInjector {
  #fault: Fault | undefined;
  #remaining = Number.POSITIVE_INFINITY;

  inject(fault: Fault): void {
    this.#fault = fault;
    this.#remaining = fault.times ?? Number.POSITIVE_INFINITY;
  }

  clear(): void {
    this.#fault = undefined;
  }

  /** Consumes one use of the current fault and says what to do. */
  next(): FaultDecision {
    const fault = this.#fault;
    if (fault === undefined) return { action: "none" };
    this.#remaining -= 1;
    if (this.#remaining <= 0) this.#fault = undefined;
    switch (fault.kind) {
      case "slow":
        return { action: "delay", ms: fault.ms };
      case "hang":
        return { action: "hang" };
      case "reset":
        return { action: "reset" };
      default:
        return { action: "respond", fault };
    }
  }

  /**
   * Applies delay/hang/reset itself; returns the status-like fault for the fake to render in its
   * own envelope, or undefined when the request should be served normally.
   * A hung request is left open until the client gives up or the server closes.
   */
  async apply(
    req: IncomingMessage,
    _res: ServerResponse,
  ): Promise<Extract<Fault, { kind: "status" | "throttle" | "malformed" }> | "handled" | undefined> {
    const decision = this.next();
    switch (decision.action) {
      case "none":
        return undefined;
      case "delay":
        await new Promise((resolve) => setTimeout(resolve, decision.ms));
        return undefined;
      case "hang":
        return "handled";
      case "reset":
        req.socket.destroy();
        return "handled";
      case "respond":
        return decision.fault;
    }
  }
}
