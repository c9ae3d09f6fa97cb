import { describe, expect, it } from '@jest/globals';
import type { RegistryRecord } from '@droplet-mesh/udc-kit';
import { balancedMembers, renderRouteConfig } from '../src/domain/render.js';
import { renderMainConf } from '../src/domain/main-conf.js';
import { routesFromRegistry } from '../src/domain/registry-sync.js';
import { decide, registeredDomain, DEFAULT_LIMITS, type BudgetEvent } from '../src/acme/budget.js';
import { resolveUpstreams } from '../src/upstreams/resolve.js';
import { acmeDirectoryUrl, proxyManagerConfigSchema } from '../src/config.js';
import type { RouteRecord } from '../src/domain/route-spec.js';

const route: RouteRecord = {
  name: 'app',
  domain: 'app.test',
  upstreams: [{ host: 'a.internal', port: 3000, weight: 2 }],
  require_healthy: true,
  enable_ssl: false,
  health_path: '/health',
  websocket: false,
  lb: 'least_conn',
  paths: [],
  max_body_size: '64m',
  access_log: true,
  created_at: '',
  updated_at: '',
};
const listen = { address: '127.0.0.1', httpPort: 8080, httpsPort: 8443, publicHttpsPort: 8443 };

describe('renderRouteConfig', () => {
  it('renders an upstream block with addresses, weights and the lb method', () => {
    const text = renderRouteConfig({
      route,
      servers: [
        { address: '10.0.0.1', port: 3000, weight: 2 },
        { address: 'fd00::1', port: 3000, weight: 2 },
      ],
      listen,
      webroot: '/w',
      accessLog: '/l/access.log',
    });
    expect(text).toContain('upstream mesh_app {\n    least_conn;\n    server 10.0.0.1:3000 weight=2');
    expect(text).toContain('server [fd00::1]:3000 weight=2');
    expect(text).toContain('listen 127.0.0.1:8080;');
    expect(text).toContain('server_name app.test;');
    expect(text).toContain('proxy_pass http://mesh_app;');
    expect(text).toContain('location ^~ /.well-known/acme-challenge/');
    expect(text).not.toContain('Upgrade');
  });

  it('answers 502 without an upstream block when nothing resolved', () => {
    const text = renderRouteConfig({ route, servers: [], listen, webroot: '/w', accessLog: '/l/access.log' });
    expect(text).not.toContain('upstream mesh_app {');
    expect(text).toContain('return 502;');
  });

  it('with a certificate: HTTP redirects to HTTPS (keeping the ACME location), HTTPS proxies', () => {
    const text = renderRouteConfig({
      route: { ...route, websocket: true },
      servers: [{ address: '10.0.0.1', port: 3000, weight: 1 }],
      listen,
      webroot: '/w',
      accessLog: '/l/access.log',
      tls: { certificate: '/c/fullchain.pem', key: '/c/privkey.pem' },
    });
    expect(text).toContain('return 301 https://app.test:8443$request_uri;');
    expect(text).toContain('listen 127.0.0.1:8443 ssl;');
    expect(text).toContain('ssl_certificate /c/fullchain.pem;');
    expect(text).toContain('proxy_set_header Upgrade $http_upgrade;');
    const redirect443 = renderRouteConfig({
      route,
      servers: [],
      listen: { ...listen, publicHttpsPort: 443 },
      webroot: '/w',
      accessLog: '/l/access.log',
      tls: { certificate: '/c/f', key: '/c/k' },
    });
    expect(redirect443).toContain('return 301 https://app.test$request_uri;');
  });

  it('is deterministic', () => {
    const input = { route, servers: [{ address: '10.0.0.1', port: 3000, weight: 1 }], listen, webroot: '/w', accessLog: '/l/access.log' };
    expect(renderRouteConfig(input)).toBe(renderRouteConfig(input));
  });

  it('the main config keeps every path inside the prefix and includes sites-enabled', () => {
    const text = renderMainConf({
      prefix: '/p',
      pidFile: '/p/logs/nginx.pid',
      errorLog: '/p/logs/error.log',
      sitesEnabled: '/p/sites-enabled',
      webroot: '/p/acme-webroot',
      listen,
      foreground: true,
    });
    for (const t of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) expect(text).toContain(`${t}_temp_path /p/temp/`);
    expect(text).toContain('pid /p/logs/nginx.pid;');
    expect(text).toContain('include /p/sites-enabled/*.conf;');
    expect(text).toContain('daemon off;');
    expect(() =>
      renderMainConf({ prefix: '/p p', pidFile: '/p', errorLog: '/p', sitesEnabled: '/p', webroot: '/p', listen, foreground: true }),
    ).toThrow();
  });
});

describe('resolveUpstreams', () => {
  it('keeps IPs, resolves names, reports the unresolvable ones and sorts for stable output', async () => {
    const look = async (h: string) => {
      if (h === 'two.internal') return ['10.0.0.3', '10.0.0.2'];
      throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' });
    };
    const r = await resolveUpstreams(
      [
        { host: 'two.internal', port: 80, weight: 1 },
        { host: '10.0.0.1', port: 81, weight: 3 },
        { host: 'ghost.invalid', port: 80, weight: 1 },
      ],
      look,
    );
    expect(r.servers.map((s) => `${s.address}:${s.port}`)).toEqual(['10.0.0.1:81', '10.0.0.2:80', '10.0.0.3:80']);
    expect(r.unresolved).toEqual([{ host: 'ghost.invalid', port: 80, error: 'ENOTFOUND: cannot resolve ghost.invalid' }]);
  });
});

const rec = (o: Partial<RegistryRecord>): RegistryRecord => ({
  id: 'x',
  name: 'x',
  url: 'http://127.0.0.1:1',
  kind: 'service',
  capabilities: [],
  steward: 'registry',
  status: 'active',
  registered_at: '',
  updated_at: '',
  ...o,
});

describe('routesFromRegistry', () => {
  it('maps records with a domain to routes at their URL', () => {
    const plan = routesFromRegistry([
      rec({ id: 'shop', name: 'shop', url: 'http://10.0.0.5:3000/', domain: 'Shop.Example.com', health_path: '/ready' }),
      rec({ id: 'api', name: 'API_v2', url: 'https://api.internal', domain: 'api.example.com' }),
      rec({ id: 'no-domain', name: 'worker', url: 'http://10.0.0.6:1' }),
    ]);
    expect(plan.routes).toEqual([
      {
        name: 'shop',
        record_id: 'shop',
        spec: {
          domain: 'shop.example.com',
          upstreams: [{ host: '10.0.0.5', port: 3000, weight: 1 }],
          health_path: '/ready',
          require_healthy: false,
          enable_ssl: false,
          websocket: false,
          lb: 'round_robin',
          paths: [],
          max_body_size: '64m',
          access_log: true,
        },
      },
      {
        name: 'api-v2',
        record_id: 'api',
        spec: expect.objectContaining({ domain: 'api.example.com', upstreams: [{ host: 'api.internal', port: 443, weight: 1 }] }),
      },
    ]);
    expect(plan.skipped).toEqual([]);
  });

  it('skips, with a reason, records it cannot route', () => {
    const plan = routesFromRegistry([
      rec({ id: 'down', name: 'down', status: 'down', domain: 'down.example.com' }),
      rec({ id: 'ftp', name: 'ftp', url: 'ftp://10.0.0.1/', domain: 'ftp.example.com' }),
      rec({ id: 'evil', name: 'evil', url: 'http://10.0.0.1/', domain: 'evil.example.com; return 200' }),
      rec({ id: 'garbage', name: 'garbage', url: 'not a url', domain: 'g.example.com' }),
      rec({ id: 'one', name: 'dup', url: 'http://10.0.0.1/', domain: 'dup.example.com' }),
      rec({ id: 'two', name: 'dup2', url: 'http://10.0.0.2/', domain: 'dup.example.com' }),
      rec({ id: '!!!', name: '!!!', url: 'http://10.0.0.2/', domain: 'bang.example.com' }),
    ]);
    expect(plan.routes.map((r) => r.name)).toEqual(['dup']);
    expect(plan.skipped.map((s) => s.id)).toEqual(['down', 'ftp', 'evil', 'garbage', 'two', '!!!']);
    expect(plan.skipped.find((s) => s.id === 'evil')?.reason).toContain('domain');
  });
});

describe('ACME budget', () => {
  const now = Date.parse('2026-11-20T12:00:00Z');
  const ev = (kind: BudgetEvent['kind'], domain: string, minutesAgo: number): BudgetEvent => ({
    kind,
    domain,
    at: now - minutesAgo * 60_000,
  });

  it('allows a first order', () => {
    expect(decide([], 'a.example.com', now)).toEqual({ allowed: true });
  });

  it('refuses after too many failed validations for a hostname in an hour, with the retry time', () => {
    const events = [ev('failed', 'a.example.com', 50), ev('failed', 'a.example.com', 10)];
    const d = decide(events, 'a.example.com', now);
    expect(d).toMatchObject({ allowed: false });
    if (!d.allowed) expect(d.retry_at).toBe(now - 50 * 60_000 + 3600_000);
    expect(decide(events, 'b.example.com', now).allowed).toBe(true);
    expect(decide([ev('failed', 'a.example.com', 70), ev('failed', 'a.example.com', 10)], 'a.example.com', now).allowed).toBe(true);
  });

  it('refuses duplicate certificates and too many under one registered domain per week', () => {
    expect(decide([ev('issued', 'a.example.com', 60), ev('issued', 'a.example.com', 30)], 'a.example.com', now).allowed).toBe(false);
    const many = Array.from({ length: DEFAULT_LIMITS.certsPerRegisteredDomainPerWeek }, (_, i) => ev('issued', `h${i}.example.com`, i + 1));
    const d = decide(many, 'new.example.com', now);
    expect(d.allowed).toBe(false);
    if (!d.allowed) expect(d.reason).toContain('example.com');
    expect(decide(many, 'new.other.org', now).allowed).toBe(true);
  });

  it('limits new orders per account', () => {
    const orders = Array.from({ length: DEFAULT_LIMITS.ordersPerAccountPer3Hours }, (_, i) => ev('order', `x${i}.example.org`, 1));
    expect(decide(orders, 'y.example.net', now).allowed).toBe(false);
  });

  it("our ceilings stay under Let's Encrypt's published limits", () => {
    expect(DEFAULT_LIMITS.failedPerDomainPerHour).toBeLessThan(5);
    expect(DEFAULT_LIMITS.certsPerRegisteredDomainPerWeek).toBeLessThan(50);
    expect(DEFAULT_LIMITS.duplicatesPerWeek).toBeLessThan(5);
    expect(DEFAULT_LIMITS.ordersPerAccountPer3Hours).toBeLessThan(300);
    expect(registeredDomain('a.b.example.com')).toBe('example.com');
  });
});

describe('the ACME directory', () => {
  const parse = (env: Record<string, string>) => proxyManagerConfigSchema.parse({ NATS_URL: 'nats://127.0.0.1:4222', ...env });
  it("is Let's Encrypt production by default, staging with ACME_STAGING=true, and ACME_DIRECTORY_URL wins over both", () => {
    expect(acmeDirectoryUrl(parse({}))).toBe('https://acme-v02.api.letsencrypt.org/directory');
    expect(acmeDirectoryUrl(parse({ ACME_DIRECTORY_URL: '' }))).toBe('https://acme-v02.api.letsencrypt.org/directory');
    expect(acmeDirectoryUrl(parse({ ACME_STAGING: 'true' }))).toBe('https://acme-staging-v02.api.letsencrypt.org/directory');
    expect(acmeDirectoryUrl(parse({ ACME_STAGING: 'true', ACME_DIRECTORY_URL: 'https://127.0.0.1:14000/dir' }))).toBe(
      'https://127.0.0.1:14000/dir',
    );
    expect(() => parse({ ACME_STAGING: 'maybe' })).toThrow();
  });
});

describe('the Lua balancer in rendered files', () => {
  const lua = { modulesDir: '/m', luaDir: '/p/lua', stateDir: '/p/conf', socket: '/p/control.sock' };
  it('the main config loads the module and opens the control socket only when asked', () => {
    const base = {
      prefix: '/p',
      pidFile: '/p/logs/nginx.pid',
      errorLog: '/p/logs/error.log',
      sitesEnabled: '/p/sites-enabled',
      webroot: '/p/w',
      listen,
      foreground: true,
    };
    const plain = renderMainConf(base);
    expect(plain).not.toContain('lua');
    const text = renderMainConf({ ...base, lua });
    expect(text.startsWith('# Managed by proxy-manager; regenerated at start.\nload_module /m/ndk_http_module.so;')).toBe(true);
    expect(text).toContain('lua_shared_dict mesh_upstreams 4m;');
    expect(text).toContain('listen unix:/p/control.sock;');
    expect(text).toContain('init_by_lua_block { require("mesh_balancer").init("/p/conf") }');
    expect(text).toContain('balancer_by_lua_block { require("mesh_balancer").balance(ngx.var.mesh_upstream) }');
    // The copy nginx -t checks: no module, no Lua, the shared upstream a plain stub.
    const testCopy = renderMainConf({ ...base, lua, testOnly: true });
    expect(testCopy).not.toContain('lua');
    expect(testCopy).not.toContain('control.sock');
    expect(testCopy).toContain('upstream mesh_balancer {\n        server 0.0.0.1:1;\n    }');
    expect(testCopy.replace(/ {4}upstream mesh_balancer[^}]*}\n/, '')).toBe(plain);
  });

  it('a dynamic round-robin upstream names no address (members go to the balancer); least_conn keeps them in the file', () => {
    const input = {
      route: { ...route, lb: 'round_robin' as const },
      servers: [{ address: '10.0.0.1', port: 3000, weight: 2 }],
      listen,
      webroot: '/w',
      accessLog: '/l/access.log',
      dynamic: true,
    };
    const text = renderRouteConfig(input);
    // No per-route Lua and no upstream block: the location names the members for the shared balancer.
    expect(text).toContain('        set $mesh_upstream mesh_app;\n        proxy_pass http://mesh_balancer;');
    expect(text).not.toContain('lua');
    expect(text).not.toContain('upstream mesh_app {');
    expect(text).not.toContain('10.0.0.1');
    expect([...balancedMembers(input)]).toEqual([['mesh_app', [{ address: '10.0.0.1', port: 3000, weight: 2 }]]]);
    // Other members: the same bytes (so no nginx -t and no reload).
    expect(renderRouteConfig({ ...input, servers: [{ address: '10.0.0.9', port: 4000, weight: 1 }] })).toBe(text);
    const least = { ...input, route: { ...route, lb: 'least_conn' as const } };
    expect(renderRouteConfig(least)).toContain('server 10.0.0.1:3000 weight=2');
    expect(balancedMembers(least).size).toBe(0);
  });
});
