import { type Command, InvalidArgumentError } from 'commander';
import type { Column } from '../table.js';
import type { CommandEnv } from './command-env.js';
import { collect } from './options.js';

const DROPLET = 'proxy-manager';

interface Upstream {
  host: string;
  port: number;
  weight?: number;
}

interface Route {
  name: string;
  domain: string;
  upstreams: Upstream[];
  enable_ssl: boolean;
  websocket?: boolean;
  lb?: string;
  status: { state: string; https?: boolean; last_error?: { message: string } } | null;
  certificate: { not_after: string; days_left: number } | null;
  ssl_pending?: boolean;
}

/** `host:port`, `host:port:weight`, `[v6]:port[:weight]`. Host validation is the proxy-manager's. */
export function parseUpstream(value: string): Upstream {
  const m = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})(?::(\d{1,3}))?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected host:port or host:port:weight');
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new InvalidArgumentError('port must be 1-65535');
  return { host: m[1], port, ...(m[3] ? { weight: Number(m[3]) } : {}) };
}

const upstreamText = (u: Upstream[]) =>
  u.map((x) => `${x.host.includes(':') ? `[${x.host}]` : x.host}:${x.port}${x.weight && x.weight !== 1 ? `*${x.weight}` : ''}`).join(',');

const columns: Column<Route>[] = [
  { header: 'NAME', value: (r) => r.name },
  { header: 'DOMAIN', value: (r) => r.domain },
  { header: 'UPSTREAMS', value: (r) => upstreamText(r.upstreams) },
  { header: 'STATE', value: (r) => r.status?.state ?? 'pending' },
  { header: 'HTTPS', value: (r) => (r.status?.https ? 'yes' : r.ssl_pending ? 'pending' : r.enable_ssl ? 'no cert' : 'no') },
  {
    header: 'CERT EXPIRES',
    value: (r) => (r.certificate ? `${r.certificate.not_after.slice(0, 10)} (${r.certificate.days_left}d)` : null),
  },
];

export function registerRouteCommands(program: Command, { context }: CommandEnv): void {
  const routes = program.command('routes').description('NGINX routes through proxy-manager');

  routes
    .command('ls', { isDefault: true })
    .description('Every route with its applied state and certificate')
    .option('--url <url>', 'proxy-manager URL (env MESHCTL_PROXY_MANAGER_URL)')
    .action(async (o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const pm = await ctx.droplet(DROPLET, o.url);
      const { items } = await pm.all<Route>('/proxies');
      ctx.out.result({ items }, () => ctx.out.table(columns, items));
    });

  routes
    .command('set <name>')
    .description('Create or replace a route: domain → upstreams')
    .requiredOption('--domain <domain>')
    .requiredOption('--upstream <host:port[:weight]>', 'repeatable', (v: string, prev: Upstream[] = []) => [...prev, parseUpstream(v)])
    .option('--health-path <path>', 'checked on the upstreams before applying', '/health')
    .option('--no-require-healthy', 'apply even when no upstream answers its health path')
    .option('--ssl', 'serve HTTPS once a certificate exists (see `routes ssl`)')
    .option('--websocket', 'pass WebSocket upgrades')
    .option('--lb <method>', 'round_robin or least_conn')
    .option('--url <url>', 'proxy-manager URL')
    .action(
      async (
        name: string,
        o: {
          domain: string;
          upstream: Upstream[];
          healthPath: string;
          requireHealthy: boolean;
          ssl?: boolean;
          websocket?: boolean;
          lb?: string;
          url?: string;
        },
        cmd: Command,
      ) => {
        const ctx = context(cmd);
        const pm = await ctx.droplet(DROPLET, o.url);
        const body = {
          domain: o.domain,
          upstreams: o.upstream.map((u) => ({ host: u.host.replace(/^\[|\]$/g, ''), port: u.port, weight: u.weight ?? 1 })),
          health_path: o.healthPath,
          require_healthy: o.requireHealthy,
          enable_ssl: !!o.ssl,
          websocket: !!o.websocket,
          ...(o.lb ? { lb: o.lb } : {}),
        };
        const res = await pm.send<Route>('PUT', `/proxies/${encodeURIComponent(name)}`, { body });
        ctx.out.result(res.body, () => {
          const r = res.body;
          ctx.out.line(
            `${res.status === 201 ? 'created' : 'updated'} route ${r.name}: ${r.domain} -> ${upstreamText(r.upstreams)} (${r.status?.state ?? 'pending'})`,
          );
        });
      },
    );

  routes
    .command('rm <name>')
    .description('Delete a route')
    .option('--url <url>', 'proxy-manager URL')
    .action(async (name: string, o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const pm = await ctx.droplet(DROPLET, o.url);
      const body = await pm.delete(`/proxies/${encodeURIComponent(name)}`);
      ctx.out.result(body, () => ctx.out.line(`deleted route ${name}`));
    });

  routes
    .command('ssl <name>')
    .description("Obtain (or renew) the route's certificate over ACME and switch it to HTTPS")
    .option('--email <email>', 'ACME account contact')
    .option('--force-renew', 'renew even if the certificate is still valid')
    .option('--url <url>', 'proxy-manager URL')
    .action(async (name: string, o: { email?: string; forceRenew?: boolean; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      // ACME issuance takes a while against a real CA.
      const pm = await ctx.droplet(DROPLET, o.url);
      const res = await pm.send<{ action: string; route: Route }>('POST', `/proxies/${encodeURIComponent(name)}/ssl`, {
        body: { ...(o.email ? { email: o.email } : {}), force_renew: !!o.forceRenew },
        timeoutMs: Math.max(ctx.timeoutMs, 180_000),
      });
      ctx.out.result(res.body, () => {
        const c = res.body.route.certificate;
        ctx.out.line(
          `certificate ${res.body.action} for ${res.body.route.domain}${c ? `: valid until ${c.not_after} (${c.days_left} days)` : ''}`,
        );
      });
    });
}
