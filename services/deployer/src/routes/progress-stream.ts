import type { Request, Response } from 'express';
import { NotFound } from '@droplet-mesh/udc-kit';
import { FINAL_STATUSES, type ProgressEvent } from '../domain/model.js';
import { progressSubject } from '../deploy/progress.js';
import type { RouteDeps } from './route-deps.js';

export const wantsEventStream = (req: Request) => /text\/event-stream/.test(req.header('accept') ?? '') || req.query.wait === 'true';

/**
 * Server-Sent Events for one deployment: the recorded events first (from KV), then live
 * ones from NATS, so any replica can stream any deploy. Ends after the final status.
 */
export async function streamProgress(
  deps: RouteDeps,
  req: Request,
  res: Response,
  id: string,
  preface?: Record<string, unknown>,
): Promise<void> {
  const stores = deps.stores();
  const nc = deps.ctx.bus.nc;
  const first = await stores.deployments.get(id);
  if (!first) throw new NotFound(`no deployment '${id}'`);

  let lastSeq = 0;
  let ended = false;
  let pending: ProgressEvent[] | undefined = [];
  const write = (e: ProgressEvent) => {
    if (ended || e.seq <= lastSeq) return;
    lastSeq = e.seq;
    res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    if (e.type === 'status' && e.status && FINAL_STATUSES.has(e.status)) finish();
  };
  const sub = nc.subscribe(progressSubject(id), {
    callback: (_err, msg) => {
      const e = msg.json<ProgressEvent>();
      if (pending) pending.push(e);
      else void deliver(e);
    },
  });
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  keepAlive.unref();
  const finish = () => {
    if (ended) return;
    ended = true;
    clearInterval(keepAlive);
    sub.unsubscribe();
    res.end();
  };
  // A gap (events published before we subscribed, not yet in KV) is filled from the record.
  const deliver = async (e: ProgressEvent) => {
    if (e.seq > lastSeq + 1) {
      const rec = await stores.deployments.get(id);
      for (const old of rec?.events ?? []) if (old.seq < e.seq) write(old);
    }
    write(e);
  };
  req.on('close', finish);

  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  if (preface) res.write(`event: accepted\ndata: ${JSON.stringify(preface)}\n\n`);
  await nc.flush();
  const record = (await stores.deployments.get(id)) ?? first;
  for (const e of record.events) write(e);
  const buffered = pending;
  pending = undefined;
  for (const e of buffered) await deliver(e);
  // Final already, but its status event was trimmed from the record: say it once.
  if (!ended && FINAL_STATUSES.has(record.status)) {
    res.write(
      `event: status\ndata: ${JSON.stringify({ deployment_id: id, type: 'status', status: record.status, message: record.reason, percent: record.percent })}\n\n`,
    );
    finish();
  }
}
