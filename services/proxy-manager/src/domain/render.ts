import type { RouteRecord } from './route-spec.js';

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
  /** Empty when no upstream resolved: the route then answers 502. */
  servers: ResolvedServer[];
  listen: ListenSettings;
  webroot: string;
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

function proxyLocation(input: RenderInput): string {
  const { route, servers } = input;
  if (servers.length === 0) {
    return [
      '    location / {',
      '        # no upstream address resolved: answer 502 rather than fail the whole config',
      '        return 502;',
      '    }',
    ].join('\n');
  }
  const lines = [
    '    location / {',
    `        proxy_pass http://${upstreamName(route.name)};`,
    '        proxy_http_version 1.1;',
    '        proxy_set_header Host $host;',
    '        proxy_set_header X-Real-IP $remote_addr;',
    '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '        proxy_set_header X-Forwarded-Proto $scheme;',
    '        proxy_next_upstream error timeout http_502 http_503;',
  ];
  if (route.websocket) {
    lines.push(
      '        proxy_set_header Upgrade $http_upgrade;',
      '        proxy_set_header Connection $connection_upgrade;',
      '        proxy_read_timeout 3600s;',
    );
  } else {
    lines.push('        proxy_set_header Connection "";');
  }
  lines.push('    }');
  return lines.join('\n');
}

function upstreamBlock(input: RenderInput): string {
  if (input.servers.length === 0) return '';
  const lines = [`upstream ${upstreamName(input.route.name)} {`];
  if (input.route.lb === 'least_conn') lines.push('    least_conn;');
  for (const s of input.servers)
    lines.push(`    server ${serverAddress(s)} weight=${safe(s.weight, 'weight')} max_fails=3 fail_timeout=10s;`);
  lines.push('    keepalive 16;', '}', '');
  return lines.join('\n');
}

/** The whole file for one route: `<sites-available>/mesh-<name>.conf`. Pure. */
export function renderRouteConfig(input: RenderInput): string {
  const { route, listen: l, webroot, tls } = input;
  const domain = safe(route.domain, 'domain');
  const out: string[] = [
    `# Managed by proxy-manager (route ${safe(route.name, 'route name')}); hand edits are overwritten.`,
    upstreamBlock(input),
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
      proxyLocation(input),
      '}',
      '',
    );
  } else {
    out.push(proxyLocation(input), '}', '');
  }
  return out.filter((s, i) => s !== '' || i === out.length - 1).join('\n');
}
