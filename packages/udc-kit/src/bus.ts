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
  /** Replicas of the KV buckets this bus creates (NATS_REPLICAS); default 1. */
  replicas?: number;
  /** The server does not deliver this connection's own messages back to its subscriptions. */
  noEcho?: boolean;
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
    private replicas = 1,
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
          // A cluster's servers, comma-separated: the client fails over between them.
          servers: opts.url.split(',').map((u) => u.trim()),
          name: opts.name,
          user: opts.user,
          pass: opts.pass,
          // Replies come back under the droplet's own prefix, which only its NATS user may read.
          inboxPrefix: inboxPrefixFor(opts.name),
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          timeout: 2000,
          // A server that stops answering (frozen, partitioned) rather than closing the connection
          // is left after two missed pings (~10 s) for another server of the cluster; the client's
          // default (two minutes, twice) would keep a droplet on a dead node for four.
          pingInterval: 5000,
          maxPingOut: 2,
          // The client otherwise builds two Errors (stack traces) per request in case it times
          // out: a few % of a message round trip. A timeout still says which subject it was.
          noAsyncTraces: true,
          noEcho: opts.noEcho,
        });
        return new Bus(nc, opts.logger, opts.replicas);
      } catch (err) {
        lastErr = err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    throw new Error(`cannot connect to NATS at ${opts.url}: ${(lastErr as Error)?.message ?? 'timeout'}`);
  }

  /** Connect as the droplet `name` with the NATS settings every droplet reads (NATS_URL, NATS_USER, NATS_PASSWORD, NATS_REPLICAS). */
  static fromConfig(
    config: { NATS_URL: string; NATS_USER?: string; NATS_PASSWORD?: string; NATS_REPLICAS?: number },
    name: string,
    logger?: Logger,
    more: Pick<BusOptions, 'noEcho'> = {},
  ): Promise<Bus> {
    return Bus.connect({
      url: config.NATS_URL,
      name,
      user: config.NATS_USER,
      pass: config.NATS_PASSWORD,
      replicas: config.NATS_REPLICAS,
      logger,
      ...more,
    });
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

  /**
   * A KV bucket, created on first use (history keeps a few revisions for debugging) with
   * the bus's replicas; an existing bucket with fewer replicas is grown to them.
   */
  kv(bucket: string, opts: { history?: number; ttlMs?: number } = {}): Promise<KV> {
    let p = this.kvs.get(bucket);
    if (!p) {
      p = this.growReplicas(bucket).then(() =>
        new Kvm(this.nc).create(bucket, {
          history: opts.history ?? 5,
          replicas: this.replicas,
          ...(opts.ttlMs ? { ttl: opts.ttlMs } : {}),
        }),
      );
      p.catch(() => this.kvs.delete(bucket));
      this.kvs.set(bucket, p);
    }
    return p;
  }

  /** JetStream scales a stream's replicas up in place; a bucket made before NATS_REPLICAS grew is updated, not refused. */
  private async growReplicas(bucket: string): Promise<void> {
    if (this.replicas <= 1) return;
    const jsm = await jetstreamManager(this.nc);
    const info = await jsm.streams.info(`KV_${bucket}`).catch(() => undefined);
    if (!info || info.config.num_replicas >= this.replicas) return;
    // A cluster still forming (or a node catching up) answers "no suitable peers" for a while:
    // retry that for a bounded time, then fail with JetStream's own error.
    const deadline = performance.now() + 15_000;
    for (;;) {
      try {
        await jsm.streams.update(`KV_${bucket}`, { ...info.config, num_replicas: this.replicas });
        break;
      } catch (err) {
        if (!/no suitable peers/i.test(String(err)) || performance.now() > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    this.logger?.info({ bucket, from: info.config.num_replicas, to: this.replicas }, 'KV bucket replicas grown');
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
