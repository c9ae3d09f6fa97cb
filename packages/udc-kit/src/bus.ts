import { connect, type NatsConnection, headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { inboxPrefixFor } from './nats-auth.js';

export interface BusOptions {
  url: string;
  name: string;
  user?: string;
  pass?: string;
  logger?: Logger;
  /** How long start-up waits for the first connection before failing. */
  connectTimeoutMs?: number;
}

/**
 * The droplet's NATS connection: reconnects forever, tracks whether it is connected
 * (read by /health without I/O), and hands out JetStream KV buckets.
 */
export class Bus {
  private connected = false;
  private kvs = new Map<string, Promise<KV>>();
  private constructor(
    readonly nc: NatsConnection,
    private logger?: Logger,
  ) {
    this.connected = true;
    void this.watchStatus();
  }

  static async connect(opts: BusOptions): Promise<Bus> {
    const deadline = Date.now() + (opts.connectTimeoutMs ?? 30_000);
    let lastErr: unknown;
    while (Date.now() < deadline) {
      try {
        const nc = await connect({
          servers: opts.url,
          name: opts.name,
          user: opts.user,
          pass: opts.pass,
          // Replies come back under the droplet's own prefix, which only its NATS user may read.
          inboxPrefix: inboxPrefixFor(opts.name),
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          timeout: 2000,
        });
        return new Bus(nc, opts.logger);
      } catch (err) {
        lastErr = err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    throw new Error(`cannot connect to NATS at ${opts.url}: ${(lastErr as Error)?.message ?? 'timeout'}`);
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect') {
        this.connected = false;
        this.logger?.warn({ nats: s.type }, 'NATS disconnected');
      } else if (s.type === 'reconnect') {
        this.connected = true;
        this.logger?.info({ nats: s.type }, 'NATS reconnected');
      }
    }
  }

  isConnected(): boolean {
    return this.connected && !this.nc.isClosed();
  }

  jetstream(): JetStreamClient {
    return jetstream(this.nc);
  }

  async jetstreamManager() {
    return jetstreamManager(this.nc);
  }

  /** A KV bucket, created on first use (history keeps a few revisions for debugging). */
  kv(bucket: string, opts: { history?: number; ttlMs?: number } = {}): Promise<KV> {
    let p = this.kvs.get(bucket);
    if (!p) {
      p = new Kvm(this.nc).create(bucket, { history: opts.history ?? 5, ...(opts.ttlMs ? { ttl: opts.ttlMs } : {}) });
      p.catch(() => this.kvs.delete(bucket));
      this.kvs.set(bucket, p);
    }
    return p;
  }

  publishJson(subject: string, data: unknown, hdrs?: Record<string, string>): void {
    let h: MsgHdrs | undefined;
    if (hdrs) {
      h = natsHeaders();
      for (const [k, v] of Object.entries(hdrs)) h.set(k, v);
    }
    this.nc.publish(subject, JSON.stringify(data), h ? { headers: h } : undefined);
  }

  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    try {
      await this.nc.drain();
    } catch {
      await this.nc.close();
    }
  }
}
