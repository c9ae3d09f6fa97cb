/**
 * Collects keyed items (the latest per key wins) and hands them over in one batch once
 * no new item has arrived for `quietMs`, or `maxWaitMs` after the first one. Batches never
 * overlap: what arrives while one is being handled goes into the next.
 */
export class Batcher<T> {
  private pending = new Map<string, T>();
  private timer: NodeJS.Timeout | undefined;
  private firstAt = 0;
  private running: Promise<void> | undefined;
  private held: boolean;
  private stopped = false;

  constructor(
    private o: {
      quietMs: number;
      maxWaitMs: number;
      handle: (batch: T[]) => Promise<void>;
      onError: (err: unknown) => void;
      held?: boolean;
    },
  ) {
    this.held = o.held ?? false;
  }

  add(key: string, item: T): void {
    if (this.stopped) return;
    if (this.pending.size === 0) this.firstAt = Date.now();
    this.pending.set(key, item);
    this.schedule();
  }

  /** Start handing batches over (items added while held are kept). */
  release(): void {
    this.held = false;
    this.schedule();
  }

  /** Resolves once nothing is pending or being handled (tests and shutdown). */
  async idle(): Promise<void> {
    while (this.running || (this.pending.size > 0 && !this.held && !this.stopped)) {
      if (this.running) await this.running;
      else await new Promise((r) => setTimeout(r, this.o.quietMs));
    }
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.clear();
    return this.running ?? Promise.resolve();
  }

  private schedule(): void {
    if (this.held || this.stopped || this.running || this.pending.size === 0) return;
    if (this.timer) clearTimeout(this.timer);
    const delay = Math.max(0, Math.min(this.o.quietMs, this.o.maxWaitMs - (Date.now() - this.firstAt)));
    this.timer = setTimeout(() => this.flush(), delay);
  }

  private flush(): void {
    this.timer = undefined;
    if (this.pending.size === 0 || this.stopped) return;
    const batch = [...this.pending.values()];
    this.pending.clear();
    this.running = this.o
      .handle(batch)
      .catch(this.o.onError)
      .finally(() => {
        this.running = undefined;
        if (this.pending.size > 0) this.firstAt = Date.now();
        this.schedule();
      });
  }
}
