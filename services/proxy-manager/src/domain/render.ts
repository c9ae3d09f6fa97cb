import type { PathRoute, Redirect, RouteRecord } from './route-spec.js';

/** The upstream every balanced route proxies to (main-conf.ts); its location names the route's members in $mesh_upstream. */
export const BALANCER_UPSTREAM = 'mesh_balancer';

/** An upstream after name resolution: what actually goes into the `upstream` block. */
export interface ResolvedServer {
  address: string;
  port: number;
  weight: number;
}

export interface ListenSettings {
  address: string;
  httpPort: number;
  httpsPort: number;
  /** Port in the HTTP→HTTPS redirect (443 is left out of the URL). */
  publicHttpsPort: number;
}

export interface RenderInput {
  route: RouteRecord;
  /** Empty when no upstream resolved: the route then answers 502 (unless it redirects). */
  servers: ResolvedServer[];
  /** Per entry of `route.paths`, in order (empty for a redirect path or when nothing resolved). */
  pathServers?: ResolvedServer[][];
  listen: ListenSettings;
  webroot: string;
  /** The shared JSON access log (format `mesh_json`, declared in nginx.conf). */
  accessLog: string;
  /**
   * Round-robin upstreams take their members from the Lua balancer (nginx/lua-balancer.ts):
   * the file then holds no addresses, so a change of members changes no byte and needs no reload.
   */
  dynamic?: boolean;
  /** Present when the route serves HTTPS. */
  tls?: { certificate: string; key: string };
}

// Last line of defence: the schemas already restrict every client value, but nothing
// reaches a file unless it is made of these characters (no `;{}$"'#`, no whitespace).
const SAFE_TOKEN = /^[A-Za-z0-9._:/[\]-]+$/;

export class UnsafeConfigValue extends Error {}

export function safe(value: string | number, what: string): string {
  const s = String(value);
  if (!SAFE_TOKEN.test(s)) throw new UnsafeConfigValue(`refusing to render ${what}: ${JSON.stringify(s).slice(0, 80)}`);
  return s;
}

export function upstreamName(routeName: string): string {
  return `mesh_${safe(routeName, 'route name').replace(/-/g, '_')}`;
}

function listen(address: string, port: number, ssl = false): string {
  const host =
    address === '*' ? '' : address.includes(':') ? `[${safe(address, 'listen address')}]:` : `${safe(address, 'listen address')}:`;
  return `listen ${host}${safe(port, 'port')}${ssl ? ' ssl' : ''};`;
}

function serverAddress(s: ResolvedServer): string {
  const a = safe(s.address, 'upstream address');
  return `${a.includes(':') ? `[${a}]` : a}:${safe(s.port, 'upstream port')}`;
}

export function acmeChallengeLocation(webroot: string, indent = '    '): string {
  return [
    `${indent}location ^~ /.well-known/acme-challenge/ {`,
    `${indent}    root ${safe(webroot, 'webroot')};`,
    `${indent}    default_type text/plain;`,
    `${indent}    try_files $uri =404;`,
    `${indent}}`,
  ].join('\n');
}

/**
 * `proxy_pass` and headers shared by every proxied location. A balanced upstream goes through
 * the one shared Lua upstream (main-conf.ts), naming its members in `$mesh_upstream`: the file
 * then holds no Lua and no address, so nginx parses no per-route Lua.
 */
function proxyDirectives(upstream: string, websocket: boolean, balanced: boolean): string[] {
  const lines = [
    ...(balanced
      ? [`        set $mesh_upstream ${safe(upstream, 'upstream name')};`, `        proxy_pass http://${BALANCER_UPSTREAM};`]
      : [`        proxy_pass http://${upstream};`]),
    '        proxy_http_version 1.1;',
    '        proxy_set_header Host $host;',
    '        proxy_set_header X-Real-IP $remote_addr;',
    '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '        proxy_set_header X-Forwarded-Proto $scheme;',
    // The id in the access log, passed on and answered, so one request can be followed end to end.
    '        proxy_set_header X-Request-Id $mesh_request_id;',
    '        add_header X-Request-Id $mesh_request_id always;',
    '        proxy_next_upstream error timeout http_502 http_503;',
  ];
  if (websocket) {
    lines.push(
      '        proxy_set_header Upgrade $http_upgrade;',
      '        proxy_set_header Connection $connection_upgrade;',
      '        proxy_read_timeout 3600s;',
    );
  } else {
    lines.push('        proxy_set_header Connection "";');
  }
  return lines;
}

function redirectDirective(r: Redirect): string {
  const to = safe(r.keep_path ? r.to.replace(/\/+$/, '') : r.to, 'redirect URL');
  return `        return ${safe(r.status, 'redirect status')} ${to}${r.keep_path ? '$request_uri' : ''};`;
}

/** One `location` block: a redirect, a proxy to `upstream`, or a 502 when nothing resolved. */
function locationBlock(
  prefix: string,
  target: { redirect?: Redirect; upstream: string; servers: ResolvedServer[]; websocket: boolean; balanced: boolean },
): string {
  const open = prefix === '/' ? '    location / {' : `    location ${safe(prefix, 'path prefix')} {`;
  if (target.redirect) return [open, redirectDirective(target.redirect), '    }'].join('\n');
  if (target.servers.length === 0) {
    return [
      open,
      '        # no upstream address resolved: answer 502 rather than fail the whole config',
      '        return 502;',
      '    }',
    ].join('\n');
  }
  return [open, ...proxyDirectives(target.upstream, target.websocket, target.balanced), '    }'].join('\n');
}

/** Name of the upstream block for path `index` of a route (`-` never occurs in upstreamName). */
export function pathUpstreamName(routeName: string, index: number): string {
  return `${upstreamName(routeName)}-p${safe(index, 'path index')}`;
}

function proxyLocations(input: RenderInput): string {
  const { route } = input;
  const blocks = route.paths.map((p: PathRoute, i) =>
    locationBlock(p.prefix, {
      redirect: p.redirect,
      upstream: pathUpstreamName(route.name, i),
      servers: input.pathServers?.[i] ?? [],
      websocket: p.websocket,
      balanced: !!input.dynamic && p.lb === 'round_robin',
    }),
  );
  blocks.push(
    locationBlock('/', {
      redirect: route.redirect,
      upstream: upstreamName(route.name),
      servers: input.servers,
      websocket: route.websocket,
      balanced: !!input.dynamic && route.lb === 'round_robin',
    }),
  );
  return blocks.join('\n');
}

function upstreamBlock(name: string, lb: string, servers: ResolvedServer[], dynamic: boolean): string {
  // Balanced members live in the Lua balancer's dict, behind the shared upstream: no block here.
  if (servers.length === 0 || (dynamic && lb === 'round_robin')) return '';
  const lines = [`upstream ${name} {`];
  if (lb === 'least_conn') lines.push('    least_conn;');
  for (const s of servers) lines.push(`    server ${serverAddress(s)} weight=${safe(s.weight, 'weight')} max_fails=3 fail_timeout=10s;`);
  lines.push('    keepalive 16;', '}', '');
  return lines.join('\n');
}

/** Every upstream block of the route with its members: `[name, servers, lb]`, in file order. */
function upstreamsOf(input: RenderInput): Array<[string, ResolvedServer[], string]> {
  const { route } = input;
  const out: Array<[string, ResolvedServer[], string]> = [];
  if (!route.redirect) out.push([upstreamName(route.name), input.servers, route.lb]);
  route.paths.forEach((p, i) => {
    if (!p.redirect) out.push([pathUpstreamName(route.name, i), input.pathServers?.[i] ?? [], p.lb]);
  });
  return out;
}

function upstreamBlocks(input: RenderInput): string {
  return upstreamsOf(input)
    .map(([name, servers, lb]) => upstreamBlock(name, lb, servers, !!input.dynamic))
    .filter(Boolean)
    .join('\n');
}

/** The members the Lua balancer serves for this route (empty unless `dynamic`). */
export function balancedMembers(input: RenderInput): Map<string, ResolvedServer[]> {
  const out = new Map<string, ResolvedServer[]>();
  if (!input.dynamic) return out;
  for (const [name, servers, lb] of upstreamsOf(input)) if (lb === 'round_robin' && servers.length > 0) out.set(name, servers);
  return out;
}

/** Settings of the server block that serves the route's content. */
function serverSettings(route: RouteRecord, accessLog: string): string[] {
  return [
    `    client_max_body_size ${safe(route.max_body_size, 'max_body_size')};`,
    route.access_log ? `    access_log ${safe(accessLog, 'access log path')} mesh_json;` : '    access_log off;',
  ];
}

/** The whole file for one route: `<sites-available>/mesh-<name>.conf`. Pure. */
export function renderRouteConfig(input: RenderInput): string {
  const { route, listen: l, webroot, tls } = input;
  const domain = safe(route.domain, 'domain');
  const out: string[] = [
    `# Managed by proxy-manager (route ${safe(route.name, 'route name')}); hand edits are overwritten.`,
    upstreamBlocks(input),
    'server {',
    `    ${listen(l.address, l.httpPort)}`,
    `    server_name ${domain};`,
    acmeChallengeLocation(webroot),
  ];
  if (tls) {
    const port = l.publicHttpsPort === 443 ? '' : `:${safe(l.publicHttpsPort, 'port')}`;
    out.push('    location / {', `        return 301 https://${domain}${port}$request_uri;`, '    }', '}', '');
    out.push(
      'server {',
      `    ${listen(l.address, l.httpsPort, true)}`,
      `    server_name ${domain};`,
      `    ssl_certificate ${safe(tls.certificate, 'certificate path')};`,
      `    ssl_certificate_key ${safe(tls.key, 'key path')};`,
      '    ssl_protocols TLSv1.2 TLSv1.3;',
      ...serverSettings(route, input.accessLog),
      proxyLocations(input),
      '}',
      '',
    );
  } else {
    out.push(...serverSettings(route, input.accessLog), proxyLocations(input), '}', '');
  }
  return out.filter((s, i) => s !== '' || i === out.length - 1).join('\n');
}
