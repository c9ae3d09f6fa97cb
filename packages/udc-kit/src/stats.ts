/** Request counters and process sampling behind /state. Sampling runs on a timer, never on the request path. */
export class RuntimeStats {
  readonly startedAt = new Date();
  private readonly startedIso = this.startedAt.toISOString();
  requestsTotal = 0;
  private minuteBuckets = new Map<number, number>(); // second -> count
  private errorBuckets = new Map<number, number>(); // minute -> count of 5xx
  private lastCpu = process.cpuUsage();
  private lastSampleAt = process.hrtime.bigint();
  cpuPercent = 0;
  memoryMb = RuntimeStats.rssMb();
  private timer: NodeJS.Timeout;

  constructor(
    private now: () => number = Date.now,
    sampleMs = 2000,
  ) {
    this.timer = setInterval(() => this.sample(), sampleMs);
    this.timer.unref();
  }

  // The current second's requests are counted here and enter minuteBuckets when the second
  // changes: one comparison per request instead of a map update.
  private currentSec = Number.NaN;
  private currentCount = 0;
  // Sum of minuteBuckets within the minute before `sumAt` (a second): the buckets change only
  // when a second ends, so /state sums them once per second, not per request.
  private sumAt = Number.NaN;
  private sum = 0;

  recordRequest(status: number): void {
    this.requestsTotal++;
    const sec = Math.floor(this.now() / 1000);
    if (sec !== this.currentSec) this.closeSecond(sec);
    this.currentCount++;
    if (status >= 500) {
      const min = Math.floor(sec / 60);
      this.errorBuckets.set(min, (this.errorBuckets.get(min) ?? 0) + 1);
    }
  }

  private closeSecond(sec: number): void {
    if (this.currentCount > 0) this.minuteBuckets.set(this.currentSec, (this.minuteBuckets.get(this.currentSec) ?? 0) + this.currentCount);
    this.currentSec = sec;
    this.currentCount = 0;
    this.sumAt = Number.NaN;
    if (this.minuteBuckets.size > 120) this.prune(sec);
  }

  private prune(sec: number): void {
    for (const k of this.minuteBuckets.keys()) if (k <= sec - 60) this.minuteBuckets.delete(k);
    const min = Math.floor(sec / 60);
    for (const k of this.errorBuckets.keys()) if (k <= min - 60) this.errorBuckets.delete(k);
  }

  requestsPerMinute(): number {
    const sec = Math.floor(this.now() / 1000);
    if (sec !== this.sumAt) {
      let n = 0;
      for (const [k, v] of this.minuteBuckets) if (k > sec - 60) n += v;
      this.sum = n;
      this.sumAt = sec;
    }
    return this.sum + (this.currentSec > sec - 60 ? this.currentCount : 0);
  }

  errorsLastHour(): number {
    const min = Math.floor(this.now() / 60000);
    let n = 0;
    for (const [k, v] of this.errorBuckets) if (k > min - 60) n += v;
    return n;
  }

  sample(): void {
    const cpu = process.cpuUsage(this.lastCpu);
    const at = process.hrtime.bigint();
    const elapsedUs = Number(at - this.lastSampleAt) / 1000;
    if (elapsedUs > 0) this.cpuPercent = Math.round(((cpu.user + cpu.system) / elapsedUs) * 1000) / 10;
    this.memoryMb = RuntimeStats.rssMb();
    this.lastCpu = process.cpuUsage();
    this.lastSampleAt = at;
  }

  private static rssMb(): number {
    return Math.round((process.memoryUsage.rss() / 1024 / 1024) * 10) / 10;
  }

  snapshot() {
    return {
      cpu_percent: this.cpuPercent,
      memory_mb: this.memoryMb,
      uptime_seconds: Math.round((this.now() - this.startedAt.getTime()) / 1000),
      requests_total: this.requestsTotal,
      requests_per_minute: this.requestsPerMinute(),
      errors_last_hour: this.errorsLastHour(),
      last_restart: this.startedIso,
    };
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
