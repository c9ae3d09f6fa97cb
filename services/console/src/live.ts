import type { Request, Response } from 'express';
import { RateLimited, type Bus, type Logger } from '@droplet-mesh/udc-kit';
import type { Session } from './sessions.js';

export interface LiveEvent {
  droplet: string;
  type: string;
  data: unknown;
  time: string;
}

/**
 * Every event any droplet publishes (udc.<droplet>.events.<type>), fanned out to browsers as
 * server-sent events. The last few are kept, and a stream opens with them (`event: backfill`),
 * so the events page shows what happened just before it opened.
 */
export class LiveHub {
  private readonly clients = new Set<(e: LiveEvent) => void>();
  private readonly recent: LiveEvent[] = [];
  private sub?: { unsubscribe(): void };
  private readonly perSession = new WeakMap<Session, number>();

  constructor(
    private readonly opts: {
      logger: Logger;
      maxStreamsPerSession: () => number;
      /** Events kept for a new stream's backfill (0: none). */
      backfill?: () => number;
      keepAliveMs?: number;
    },
  ) {}

  attach(bus: Bus): void {
    this.sub = bus.nc.subscribe('udc.*.events.>', {
      callback: (err, msg) => {
        if (err) {
          this.opts.logger.warn({ err }, 'event subscription failed');
          return;
        }
        const parts = msg.subject.split('.');
        let data: unknown;
        try {
          data = msg.json();
        } catch {
          data = msg.string();
        }
        this.publish({ droplet: parts[1], type: parts.slice(3).join('.'), data, time: new Date().toISOString() });
      },
    });
  }

  publish(e: LiveEvent): void {
    const keep = this.opts.backfill?.() ?? 0;
    if (keep > 0) {
      this.recent.push(e);
      if (this.recent.length > keep) this.recent.splice(0, this.recent.length - keep);
    }
    for (const c of this.clients) c(e);
  }

  get streams(): number {
    return this.clients.size;
  }

  /** Holds the response open as an event stream until the browser leaves or the session ends. */
  serve(req: Request, res: Response, session: Session): Promise<void> {
    const open = this.perSession.get(session) ?? 0;
    if (open >= this.opts.maxStreamsPerSession()) throw new RateLimited('too many live streams open for this session', 5);
    this.perSession.set(session, open + 1);
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write(`retry: 3000\nevent: ready\ndata: {}\n\n`);
    // Oldest first; written in one go, so no live event can fall between them.
    const backfill = this.recent.map((e) => `event: backfill\ndata: ${JSON.stringify(e)}\n\n`).join('');
    if (backfill) res.write(backfill);
    return new Promise<void>((resolve) => {
      let done = false;
      const send = (e: LiveEvent) => {
        // A browser that stops reading is dropped rather than buffered without bound.
        if (res.writableLength > 1024 * 1024) return finish();
        res.write(`data: ${JSON.stringify(e)}\n\n`);
      };
      const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), this.opts.keepAliveMs ?? 15_000);
      keepAlive.unref();
      const finish = () => {
        if (done) return;
        done = true;
        clearInterval(keepAlive);
        this.clients.delete(send);
        session.onEnd.delete(finish);
        this.perSession.set(session, Math.max(0, (this.perSession.get(session) ?? 1) - 1));
        if (!res.writableEnded) res.end();
        resolve();
      };
      this.clients.add(send);
      session.onEnd.add(finish);
      req.on('close', finish);
      res.on('close', finish);
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
  }
}
