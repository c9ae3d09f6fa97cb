import { describe, expect, it } from '@jest/globals';
import { createLogger } from '@droplet-mesh/udc-kit';
import { roomForMove } from '../src/deploy/server-capacity.js';
import { ServerReplacement, type ServerReplacementDeps } from '../src/deploy/server-replacement.js';

// A lost server's replicas move only where there is room (max_replicas, or the default); when
// there is none the incident's timeline says so, server by server, and no redeploy is tried.
const servers = [
  { id: 'a', environments: ['shop/prod'], max_replicas: 2 },
  { id: 'b', environments: ['prod'], max_replicas: 1 },
  { id: 'lost', environments: ['shop/prod'] },
];
const web = {
  target_id: 'app-shop-web-prod',
  project: 'shop',
  environment: 'prod',
  containers: [{ server_id: 'a' }, { server_id: 'lost' }],
};
const api = { target_id: 'app-shop-api-prod', project: 'shop', environment: 'prod', containers: [{ server_id: 'a' }, { server_id: 'b' }] };

describe('room for a lost server’s replicas', () => {
  it('counts the other servers of the environment, their max_replicas and what other services use there', () => {
    const v = roomForMove(web, 'lost', servers, [web, api]);
    // a: 1 of 2 used by api, b: 1 of 1 used by api → room for 1, web needs 2.
    expect(v).toMatchObject({ ok: false, needed: 2 });
    expect(v.servers).toEqual([
      { server_id: 'a', used: 1, max: 2 },
      { server_id: 'b', used: 1, max: 1 },
    ]);
    expect(v.reason).toBe(
      'no capacity: app-shop-web-prod needs 2 replica(s), the other servers of shop/prod have room for 1 (a 1/2, b 1/1); raise max_replicas (PATCH /servers/{id}) or add a server',
    );
    // Its own containers are replaced, so they do not count against it.
    expect(
      roomForMove(
        web,
        'lost',
        servers.map((s) => ({ ...s, max_replicas: 3 })),
        [web, api],
      ).ok,
    ).toBe(true);
    // The default when no max_replicas is set.
    expect(
      roomForMove(
        web,
        'lost',
        servers.map(({ max_replicas: _m, ...s }) => s),
        [web, api],
      ).ok,
    ).toBe(true);
  });

  it('no other server in the environment is said as such; no server assigned at all means the local server', () => {
    const alone = roomForMove(web, 'lost', [servers[2]], [web]);
    expect(alone.ok).toBe(false);
    expect(alone.reason).toMatch(/^no capacity: no other server serves shop\/prod/);
    expect(roomForMove(web, 'lost', [{ id: 'x', environments: ['staging'] }], [web]).ok).toBe(true);
  });

  it('a server lost with no room: no redeploy, and replicas.no_capacity on the incident timeline', async () => {
    const notes: Array<{ event: string; detail: Record<string, unknown> }> = [];
    const requested: string[] = [];
    const list = <T>(items: T[]) => ({ list: async () => items });
    const deps = {
      stores: {
        releases: list([web, api]),
        servers: list(servers),
        placements: { get: async () => undefined },
        deployments: { get: async () => undefined },
      },
      deployer: () => ({
        requestDeploy: async (r: { service: string }) => {
          requested.push(r.service);
          return { deployment: { id: 'd1' }, done: Promise.resolve() };
        },
      }),
      claims: { create: async () => true, getWithRevision: async () => undefined },
      emit: () => undefined,
      logger: createLogger('test', 'silent').logger,
      note: async (_id: string, event: string, detail: Record<string, unknown>) => void notes.push({ event, detail }),
    } as unknown as ServerReplacementDeps;
    const moves = await new ServerReplacement(deps).moveOff('lost', 'down', 'health-monitor');
    expect(requested).toEqual([]);
    expect(moves).toEqual([{ target_id: 'app-shop-web-prod', skipped: expect.stringMatching(/^no capacity: /) }]);
    await new Promise((r) => setTimeout(r, 50));
    expect(notes.map((n) => n.event)).toEqual(['replicas.moving', 'replicas.no_capacity', 'replicas.moved']);
    expect(notes[1].detail).toMatchObject({ target_id: 'app-shop-web-prod', needed: 2, servers: [{ server_id: 'a' }, { server_id: 'b' }] });
  });

  it('an environment whose on_server_loss is none keeps its replicas where they were, and says so', async () => {
    const notes: string[] = [];
    const requested: string[] = [];
    const deps = fakeDeps({ requested, notes, policy: 'none', servers: servers.map((x) => ({ ...x, max_replicas: 9 })) });
    const moves = await new ServerReplacement(deps).moveOff('lost', 'down', 'health-monitor');
    expect(requested).toEqual([]);
    expect(moves).toEqual([{ target_id: 'app-shop-web-prod', skipped: 'the on_server_loss policy of shop/prod is none: not moved' }]);
  });

  it('move-back redeploys what moved off a lost server once it answers again, and forgets the loss', async () => {
    const requested: string[] = [];
    const claims = new Map<string, Record<string, unknown>>();
    const deps = fakeDeps({ requested, notes: [], servers: servers.map((x) => ({ ...x, max_replicas: 9 })), claims });
    const r = new ServerReplacement(deps);
    const moved = await r.moveOff('lost', 'down', 'health-monitor');
    expect(moved).toEqual([{ target_id: 'app-shop-web-prod', deployment_id: 'd1' }]);
    expect(claims.get('lost')?.moved).toEqual(['app-shop-web-prod']);
    // The release now runs elsewhere; the server is back.
    web.containers = [{ server_id: 'a' }, { server_id: 'a' }];
    const back = await r.moveBack('lost', 'ops');
    expect(back).toEqual([{ target_id: 'app-shop-web-prod', deployment_id: 'd1' }]);
    expect(requested).toEqual(['web', 'web']);
    expect(claims.has('lost')).toBe(false);
  });
});

function fakeDeps(o: {
  requested: string[];
  notes: string[];
  servers: typeof servers;
  policy?: string;
  claims?: Map<string, Record<string, unknown>>;
}): ServerReplacementDeps {
  const claims = o.claims ?? new Map<string, Record<string, unknown>>();
  let rev = 0;
  const list = <T>(items: T[]) => ({ list: async () => items });
  return {
    stores: {
      // Read at each call: the test changes where a release runs.
      releases: { list: async () => [web, api].map((r) => ({ ...r, service: r.target_id.split('-')[2], image: 'img' })) },
      servers: list(o.servers),
      placements: { get: async () => undefined },
      deployments: { get: async () => undefined },
    },
    deployer: () => ({
      requestDeploy: async (r: { service: string }) => {
        o.requested.push(r.service);
        return { deployment: { id: 'd1' }, done: Promise.resolve() };
      },
    }),
    claims: {
      create: async ([id]: string[], v: Record<string, unknown>) => {
        if (claims.has(id)) return false;
        claims.set(id, v);
        return true;
      },
      get: async (id: string) => claims.get(id),
      getWithRevision: async (id: string) => (claims.has(id) ? { value: claims.get(id), revision: rev } : undefined),
      update: async ([id]: string[], v: Record<string, unknown>) => {
        claims.set(id, v);
        rev++;
        return true;
      },
      delete: async (id: string) => void claims.delete(id),
    },
    policies: { get: async () => (o.policy ? { on_server_loss: o.policy } : undefined) },
    emit: () => undefined,
    logger: createLogger('test', 'silent').logger,
    note: async (_id: string, event: string) => void o.notes.push(event),
  } as unknown as ServerReplacementDeps;
}
