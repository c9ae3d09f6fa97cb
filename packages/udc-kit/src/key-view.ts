import type { KV, KvEntry, KvWatchEntry } from '@nats-io/kv';

/** How long a read waits for the view to catch up with the bucket before it answers with what it has. */
const CATCH_UP_MS = 2_000;
/** Values `entries()` reads from the bucket at once. */
const GET_BATCH = 32;

interface Waiter {
  seq: number;
  resolve: () => void;
  timer: NodeJS.Timeout;
}

/**
 * The live keys of a KV bucket (with each one's revision), kept in memory by one
 * `kv.watch()` (headers only, so values stay in the bucket).
 *
 * It replaces `kv.keys()` on request paths: in @nats-io/kv 3.4 `keys()` ends only when it
 * sees a message with nothing pending after it, or an idle heartbeat, so a matching key
 * purged while it runs can leave it waiting up to 30 s (issue 16). A watch never has to
 * decide it is finished: it applies every write in stream order. A read first asks the
 * stream for its last sequence and waits (at most CATCH_UP_MS) until the watch has applied
 * it, so a listing still sees every write committed before it began, from any replica.
 *
 * Used by the deployer and the orchestrator (moved here from the deployer).
 *
 * With nats-server 2.9 and @nats-io/kv 3.4 a watch never delivers the purge markers of keys
 * purged while their puts were still undelivered (many puts then many purges at once): such
 * keys would stay "live" here for good. `entries()` reads every value anyway, so it drops a
 * key the bucket no longer holds (`forget`); listings use it, and the view cannot grow stale.
 *
 * One view per KV handle (`KeyView.of`), started on the first read; it follows the
 * handle's connection and restarts on the next read if its watch ended.
 */
export class KeyView {
  private static views = new WeakMap<KV, KeyView>();

  static of(kv: KV): KeyView {
    let v = KeyView.views.get(kv);
    if (!v) {
      v = new KeyView(kv);
      KeyView.views.set(kv, v);
    }
    return v;
  }

  private live = new Map<string, number>();
  private seq = 0;
  private waiters: Waiter[] = [];
  private running?: Promise<{ stop: () => void }>;

  private constructor(private kv: KV) {}

  private apply(e: KvWatchEntry): void {
    if (e.operation === 'PUT') this.live.set(e.key, e.revision);
    else this.live.delete(e.key);
    if (e.revision > this.seq) this.seq = e.revision;
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.seq <= this.seq) {
        clearTimeout(w.timer);
        w.resolve();
      } else still.push(w);
    }
    this.waiters = still;
  }

  private start(): Promise<{ stop: () => void }> {
    if (this.running) return this.running;
    const running = this.kv.watch({ key: '>', headers_only: true });
    this.running = running;
    this.live = new Map();
    this.seq = 0;
    const ended = () => {
      if (this.running === running) this.running = undefined;
    };
    running.then(
      (iter) =>
        void (async () => {
          for await (const e of iter) if (this.running === running) this.apply(e);
        })()
          .catch(() => undefined)
          .finally(ended),
      ended,
    );
    return running;
  }

  /** Wait until the view has applied stream sequence `seq` (or CATCH_UP_MS passed). */
  private reached(seq: number): Promise<void> {
    if (this.seq >= seq) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const w: Waiter = {
        seq,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          resolve();
        }, CATCH_UP_MS),
      };
      this.waiters.push(w);
    });
  }

  /** Catch up with every write the bucket had when this was called. */
  async sync(): Promise<void> {
    await this.start();
    const status = await this.kv.status();
    await this.reached(status.streamInfo.state.last_seq);
  }

  /** Live keys starting with `prefix`, oldest revision first (the order `kv.keys()` gave). */
  async keys(prefix: string): Promise<{ key: string; revision: number }[]> {
    await this.sync();
    const out: { key: string; revision: number }[] = [];
    for (const [key, revision] of this.live) if (key.startsWith(prefix)) out.push({ key, revision });
    return out.sort((a, b) => a.revision - b.revision);
  }

  /**
   * The live entries under `prefix`, values read from the bucket, oldest revision first. A key
   * the bucket no longer holds leaves the view (see the class comment).
   */
  async entries(prefix: string): Promise<KvEntry[]> {
    const keys = await this.keys(prefix);
    const out: KvEntry[] = [];
    for (let i = 0; i < keys.length; i += GET_BATCH) {
      const batch = keys.slice(i, i + GET_BATCH);
      const got = await Promise.all(batch.map(({ key }) => this.kv.get(key)));
      got.forEach((e, j) => {
        if (e && e.operation === 'PUT' && e.length > 0) out.push(e);
        else this.forget(batch[j].key, batch[j].revision);
      });
    }
    return out;
  }

  /** Drop a key found gone from the bucket, unless the watch has seen a newer write of it since. */
  private forget(key: string, revision: number): void {
    if (this.live.get(key) === revision) this.live.delete(key);
  }

  /** Stop watching (the next read starts again). */
  async stop(): Promise<void> {
    const running = this.running;
    this.running = undefined;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.resolve();
    }
    this.waiters = [];
    (await running?.catch(() => undefined))?.stop();
  }
}
