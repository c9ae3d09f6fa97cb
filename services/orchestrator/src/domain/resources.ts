import { deployerServiceName, targetId, type StackFile } from './stack-schema.js';

/** Every kind of resource a stack describes, in the order they are created. */
export const KINDS = ['server', 'project', 'environment', 'service', 'placement', 'release', 'https', 'route', 'alerts'] as const;
export type Kind = (typeof KINDS)[number];

export type Attrs = Record<string, unknown>;

/** One desired resource: a stable id (its place in the file) and the attributes that matter. */
export interface Resource {
  id: string;
  kind: Kind;
  attrs: Attrs;
}

/** What exists now for one id (read from the droplets that own it). */
export interface LiveResource {
  kind: Kind;
  attrs: Attrs;
  /** Where it lives, for servers: the instance at its provider, and what it costs. */
  ref?: { provider: string; provider_id: string; price_monthly?: number | null };
}
export type LiveState = Record<string, LiveResource>;

/** What this stack created (and so may delete), with the attributes it last applied. */
export interface ManagedEntry {
  kind: Kind;
  created: boolean;
  attrs: Attrs;
  ref?: LiveResource['ref'];
}
export type Managed = Record<string, ManagedEntry>;

export const ids = {
  server: (name: string, index: number) => `server/${name}/${index}`,
  project: (p: string) => `project/${p}`,
  environment: (p: string, e: string) => `environment/${p}/${e}`,
  service: (p: string, e: string, s: string) => `service/${p}/${e}/${s}`,
  placement: (p: string, e: string, s: string) => `placement/${p}/${e}/${s}`,
  release: (p: string, e: string, s: string) => `release/${p}/${e}/${s}`,
  https: (p: string, e: string, s: string) => `https/${p}/${e}/${s}`,
  route: (name: string) => `route/${name}`,
  alerts: () => 'alerts',
};

/** The health-monitor's owner name for a stack's recipients. */
export const alertsOwner = (stack: string) => `stack-${stack}`;

export const kindOf = (id: string): Kind => id.split('/')[0] as Kind;

/** A provider instance's name: one per server copy, unique per stack. */
export const instanceName = (stack: string, server: string, index: number) => `${stack}-${server}-${index}`;
/** Labels on every instance a stack creates: how the orchestrator finds them again, and only them. */
export const STACK_LABEL = 'mesh-stack';
export const SERVER_LABEL = 'mesh-server';
export const INDEX_LABEL = 'mesh-index';

/** The deployer's server id of each copy of a stack server: its `engine`, else its instance name. */
export function engineIds(stack: string, file: StackFile, server: string): string[] {
  const s = file.servers[server];
  if (!s) return [];
  if (s.engine) return [s.engine];
  return Array.from({ length: s.count }, (_, i) => instanceName(stack, server, i));
}

/** `replicas` over `serverIds` (sorted): each gets floor(replicas/n), the first replicas%n one more; none → left out. */
export function spread(replicas: number, serverIds: string[]): Array<{ server_id: string; replicas: number }> {
  const ids = [...new Set(serverIds)].sort();
  return ids
    .map((server_id, i) => ({ server_id, replicas: Math.floor(replicas / ids.length) + (i < replicas % ids.length ? 1 : 0) }))
    .filter((x) => x.replicas > 0);
}

/** Problems that depend on the stack's name: an instance name must be a hostname of at most 63 characters. */
export function stackNameProblems(stack: string, file: StackFile): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = [];
  for (const [name, s] of Object.entries(file.servers)) {
    const longest = instanceName(stack, name, Math.max(0, s.count - 1));
    if (longest.length > 63)
      out.push({
        path: `servers.${name}`,
        message: `its instance names ('${longest}') would be longer than 63 characters: use a shorter stack or server name`,
      });
  }
  return out;
}

/** The stack file as a flat list of resources with ids (creation order by kind). */
export function desiredResources(stack: string, file: StackFile): Resource[] {
  const out: Resource[] = [];
  for (const [name, s] of Object.entries(file.servers))
    for (let i = 0; i < s.count; i++)
      out.push({
        id: ids.server(name, i),
        kind: 'server',
        attrs: {
          name: instanceName(stack, name, i),
          provider: s.provider,
          region: s.region,
          size: s.size,
          image: s.image,
          tags: [...s.tags].sort(),
          ...(s.provision ? { provision: true } : {}),
        },
      });
  for (const [p, project] of Object.entries(file.projects)) {
    out.push({ id: ids.project(p), kind: 'project', attrs: { name: p, description: project.description ?? null } });
    for (const [e, env] of Object.entries(project.environments)) {
      out.push({ id: ids.environment(p, e), kind: 'environment', attrs: { project: p, name: e, env: env.env } });
      for (const [s, svc] of Object.entries(env.services)) {
        const where = { project: p, environment: e, service: s, deployer_service: deployerServiceName(s, e), target: targetId(p, s, e) };
        out.push({
          id: ids.service(p, e, s),
          kind: 'service',
          attrs: {
            ...where,
            type: svc.type,
            domain: svc.domain ?? null,
            health_path: svc.health_path,
            env: svc.env,
            replicas: svc.replicas,
            secrets: [...new Set([...env.secrets, ...svc.secrets])].sort(),
          },
        });
        if (svc.placement) {
          const servers = spread(
            svc.replicas,
            svc.placement.flatMap((n) => engineIds(stack, file, n)),
          );
          out.push({
            id: ids.placement(p, e, s),
            kind: 'placement',
            attrs: { ...where, servers, assigned: servers.map((x) => x.server_id) },
          });
        }
        out.push({
          id: ids.release(p, e, s),
          kind: 'release',
          attrs: {
            ...where,
            image: svc.image ?? null,
            git: svc.git ? { url: svc.git.url, ref: svc.git.ref, path: svc.git.path ?? null } : null,
          },
        });
        if (svc.https && svc.domain) out.push({ id: ids.https(p, e, s), kind: 'https', attrs: { ...where, domain: svc.domain } });
      }
    }
  }
  for (const [name, r] of Object.entries(file.routes))
    out.push({
      id: ids.route(name),
      kind: 'route',
      attrs: {
        name,
        domain: r.domain,
        upstreams: r.upstreams.map((u) => ({ host: u.host.toLowerCase(), port: u.port })),
        health_path: r.health_path,
        https: r.https,
        require_healthy: r.require_healthy,
        websocket: r.websocket,
      },
    });
  if (file.alerts)
    out.push({
      id: ids.alerts(),
      kind: 'alerts',
      attrs: {
        owner: alertsOwner(stack),
        emails: [...new Set(file.alerts.emails)].sort(),
        webhooks: [...new Set(file.alerts.webhooks)].sort(),
      },
    });
  return out;
}
