import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { isWrongLastSequence } from './incident-store.js';
import { keyPart } from './keys.js';

/** When the mesh first watched each target: the start of its uptime record, kept across restarts. */
export class TargetSeenStore {
  private firstSeen = new Map<string, number>();
  private asking = new Set<string>();
  private watcher?: { stop(): void };

  constructor(
    private kv: KV,
    private log: Logger,
  ) {}

  async start(): Promise<void> {
    const iter = await this.kv.watch({ key: '>' });
    this.watcher = iter;
    void (async () => {
      for await (const e of iter) {
        if (e.operation !== 'PUT') continue;
        try {
          const v = e.json<{ id: string; first_seen_at: string }>();
          this.firstSeen.set(v.id, Date.parse(v.first_seen_at));
        } catch {
          this.log.warn({ key: e.key }, 'ignoring a malformed target record');
        }
      }
    })().catch((err) => this.log.warn({ err }, 'target watch ended'));
  }

  firstSeenAt(id: string): number | undefined {
    return this.firstSeen.get(id);
  }

  /** Record the first sighting once; whoever writes first wins. */
  ensure(id: string, at: number): void {
    if (this.firstSeen.has(id) || this.asking.has(id)) return;
    this.asking.add(id);
    this.firstSeen.set(id, at);
    this.kv
      .create(keyPart(id), JSON.stringify({ id, first_seen_at: new Date(at).toISOString() }))
      .catch((err) => {
        if (!isWrongLastSequence(err)) this.log.warn({ err, target_id: id }, 'could not record first sighting');
      })
      .finally(() => this.asking.delete(id));
  }

  stop(): void {
    this.watcher?.stop();
  }
}
