/** How many requests a fake received, per operation, so tests can assert exact upstream traffic. */
export class CallCounter<Operation extends string> {
  readonly #counts = new Map<Operation, number>();

  increment(operation: Operation): void {
    this.#counts.set(operation, this.get(operation) + 1);
  }

  get(operation: Operation): number {
    return this.#counts.get(operation) ?? 0;
  }

  reset(): void {
    this.#counts.clear();
  }
}
