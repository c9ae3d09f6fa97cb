import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

// A stand-in for the deployer's HTTP surface only (the real one is exercised in
// deployer.int.test.ts): it streams progress in exactly the deployer's SSE format
// (services/deployer/src/routes/progress-stream.ts) so the CLI's following, reconnecting
// and exit status can be tested event by event.

export interface ScriptedEvent {
  type: 'step' | 'log' | 'status';
  step?: string;
  step_status?: string;
  status?: string;
  message?: string;
  percent: number;
}

export interface Scenario {
  events: ScriptedEvent[];
  /** Cut the first stream after this many events (connection destroyed). */
  dropFirstStreamAfter?: number;
  /** Answer POST /deployments with this error envelope instead. */
  rejectWith?: { status: number; code: string; message: string };
}

export interface ReceivedDeploy {
  contentType: string;
  json?: Record<string, unknown>;
  fields?: Record<string, string>;
  archive?: Buffer;
  authorization?: string;
}

export const TOKEN = 'fake-operator-token';

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const envelope = (code: string, message: string) => ({ status: 'error', error: { code, message }, timestamp: new Date().toISOString() });

export async function startFakeDeployer() {
  let scenario: Scenario = { events: [] };
  const received: ReceivedDeploy[] = [];
  const streams: string[] = [];
  const records = new Map<
    string,
    {
      id: string;
      status: string;
      reason?: string;
      percent: number;
      project: string;
      service: string;
      environment: string;
      source: unknown;
      created_at: string;
    }
  >();

  const streamEvents = async (id: string, res: ServerResponse) => {
    const rec = records.get(id)!;
    const first = !streams.includes(id);
    streams.push(id);
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    res.write(': keep-alive\n\n');
    let seq = 0;
    for (const e of scenario.events) {
      seq += 1;
      if (first && scenario.dropFirstStreamAfter !== undefined && seq > scenario.dropFirstStreamAfter) {
        res.socket?.destroy();
        return;
      }
      const event = { seq, deployment_id: id, time: new Date(Date.UTC(2026, 10, 1, 0, 0, seq)).toISOString(), ...e };
      res.write(`id: ${seq}\nevent: ${e.type}\ndata: ${JSON.stringify(event)}\n\n`);
      if (e.type === 'status') {
        rec.status = e.status!;
        rec.reason = e.message;
        rec.percent = e.percent;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    res.end();
  };

  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (req.headers.authorization !== `Bearer ${TOKEN}`) return send(res, 401, envelope('UNAUTHORIZED', 'missing bearer token'));
      if (req.method === 'POST' && url.pathname === '/deployments') {
        const body = await readBody(req);
        const contentType = req.headers['content-type'] ?? '';
        const got: ReceivedDeploy = { contentType, authorization: req.headers.authorization };
        let project = '';
        let service = '';
        let environment = '';
        let source: unknown;
        if (contentType.startsWith('multipart/form-data')) {
          const form = await new Request('http://x/', { method: 'POST', headers: { 'content-type': contentType }, body }).formData();
          got.fields = {};
          for (const [k, v] of form.entries()) {
            if (typeof v === 'string') got.fields[k] = v;
            else got.archive = Buffer.from(await v.arrayBuffer());
          }
          ({ project, service, environment } = got.fields);
          source = { kind: 'upload', filename: 'source.tar.gz' };
        } else {
          got.json = JSON.parse(body.toString('utf8'));
          ({ project, service, environment } = got.json as Record<string, string>);
          source = got.json!.source;
        }
        received.push(got);
        if (scenario.rejectWith)
          return send(res, scenario.rejectWith.status, envelope(scenario.rejectWith.code, scenario.rejectWith.message));
        const id = randomUUID();
        records.set(id, { id, status: 'queued', percent: 0, project, service, environment, source, created_at: new Date().toISOString() });
        return send(res, 202, { id, status: 'queued', queue_position: 0, events_url: `/deployments/${id}/events` });
      }
      const rollback = /^\/deployments\/([^/]+)\/rollback$/.exec(url.pathname);
      if (req.method === 'POST' && rollback) {
        const old = records.get(rollback[1]);
        if (!old) return send(res, 404, envelope('NOT_FOUND', `no deployment '${rollback[1]}'`));
        const id = randomUUID();
        records.set(id, { ...old, id, status: 'queued', percent: 0 });
        return send(res, 202, { id, status: 'queued', queue_position: 0, rollback_of: old.id, image: old.source });
      }
      const events = /^\/deployments\/([^/]+)\/events$/.exec(url.pathname);
      if (req.method === 'GET' && events) {
        if (!records.has(events[1])) return send(res, 404, envelope('NOT_FOUND', `no deployment '${events[1]}'`));
        return streamEvents(events[1], res);
      }
      const one = /^\/deployments\/([^/]+)$/.exec(url.pathname);
      if (req.method === 'GET' && one) {
        const rec = records.get(one[1]);
        return rec ? send(res, 200, rec) : send(res, 404, envelope('NOT_FOUND', `no deployment '${one[1]}'`));
      }
      send(res, 404, envelope('NOT_FOUND', 'no such route'));
    })().catch((err) => send(res, 500, envelope('INTERNAL_ERROR', String(err))));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    received,
    streams,
    play(s: Scenario) {
      scenario = s;
      received.length = 0;
      streams.length = 0;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export const SUCCESS: ScriptedEvent[] = [
  { type: 'step', step: 'pull', step_status: 'running', percent: 0 },
  { type: 'log', step: 'pull', message: 'pulling app:1', percent: 0 },
  { type: 'step', step: 'pull', step_status: 'succeeded', percent: 30 },
  { type: 'step', step: 'start', step_status: 'running', percent: 30 },
  { type: 'step', step: 'start', step_status: 'succeeded', percent: 70 },
  { type: 'step', step: 'switch', step_status: 'running', percent: 70 },
  { type: 'step', step: 'switch', step_status: 'succeeded', percent: 95 },
  { type: 'status', status: 'succeeded', percent: 100 },
];

export const FAILURE: ScriptedEvent[] = [
  { type: 'step', step: 'pull', step_status: 'running', percent: 0 },
  { type: 'step', step: 'pull', step_status: 'succeeded', percent: 30 },
  { type: 'step', step: 'health', step_status: 'running', percent: 30 },
  { type: 'step', step: 'health', step_status: 'failed', message: 'no answer on /health within 30s', percent: 30 },
  { type: 'status', status: 'failed', message: 'health: no answer on /health within 30s', percent: 30 },
];
