import { describe, expect, it } from '@jest/globals';
import { routeBodySchema, routeNameSchema } from '../src/domain/route-spec.js';
import { renderRouteConfig, UnsafeConfigValue } from '../src/domain/render.js';
import { parseStoredRoute } from '../src/store/route-store.js';

// Nothing a client sends may change the meaning of a rendered file: no `;`, `{`, `}`,
// newline, `$`, quote, `#` or whitespace may reach it, whatever field it hides in.
const HOSTILE = [
  'a.test;',
  'a.test; return 200 "owned"',
  'a.test{',
  'a.test}',
  'a.test\nserver { listen 80; }',
  'a.test\r\ninclude /etc/passwd',
  '$host',
  'a.test$request_uri',
  '"a.test"',
  "'a.test'",
  'a.test#comment',
  'a.test ',
  ' a.test',
  'a test',
  'a.test\t',
  'a.test\u0000',
  'a.test/..',
  '../../etc',
  'a.test:80',
  'user@a.test',
  '*.a.test',
  'a..test',
  '-a.test',
  'a-.test',
  'a.test\\',
  '`id`',
  'a.test%0a',
  'a'.repeat(64) + '.test',
  `${'a.'.repeat(130)}test`,
  '',
  '\u202e.test',
  'a\u2028.test',
  '1.2.3.4;',
  '::1; }',
  'fe80::1%eth0',
  '[::1]:80',
];

const FORBIDDEN = /[;{}\n\r$"'#`\\]/;

function parse(body: unknown) {
  return routeBodySchema.safeParse(body);
}

describe('hostile input battery', () => {
  it.each(HOSTILE)('domain %j is refused', (value) => {
    expect(parse({ domain: value, upstreams: [{ host: '127.0.0.1', port: 80 }] }).success).toBe(false);
  });

  it.each(HOSTILE)('upstream host %j is refused', (value) => {
    expect(parse({ domain: 'ok.test', upstreams: [{ host: value, port: 80 }] }).success).toBe(false);
    expect(parse({ domain: 'ok.test', upstream_host: value, upstream_port: 80 }).success).toBe(false);
  });

  it.each(['a;b', 'A', 'a b', 'a\n', '$x', 'a{', 'x'.repeat(64), '', '../x', 'a_b', 'a.b'])('route name %j is refused', (value) => {
    expect(routeNameSchema.safeParse(value).success).toBe(false);
  });

  it.each([
    '/health;',
    '/he alth',
    '/h"',
    "/h'",
    '/h$x',
    '/h{',
    '/h\n',
    'health',
    '/h#x',
    '/h?x=1',
    '//evil.example/'.replace('//', '/\\'),
  ])('health_path %j is refused', (value) => {
    expect(parse({ domain: 'ok.test', upstreams: [{ host: '127.0.0.1', port: 80 }], health_path: value }).success).toBe(false);
  });

  it.each([0, -1, 65536, 1.5, '80', '80;', null, 1e10])('port %j is refused', (value) => {
    expect(parse({ domain: 'ok.test', upstreams: [{ host: '127.0.0.1', port: value }] }).success).toBe(false);
  });

  it.each([0, 101, 1.5, '1', '1; down'])('weight %j is refused', (value) => {
    expect(parse({ domain: 'ok.test', upstreams: [{ host: '127.0.0.1', port: 80, weight: value }] }).success).toBe(false);
  });

  it('unknown fields and lb values are refused (nothing extra is carried into a file)', () => {
    expect(parse({ domain: 'ok.test', upstreams: [{ host: '127.0.0.1', port: 80 }], extra_directives: 'return 200;' }).success).toBe(false);
    expect(parse({ domain: 'ok.test', upstreams: [{ host: '127.0.0.1', port: 80, backup: 'x;' }] }).success).toBe(false);
    expect(parse({ domain: 'ok.test', upstreams: [{ host: '127.0.0.1', port: 80 }], lb: 'ip_hash; }' }).success).toBe(false);
  });

  it('IDN domains are accepted as punycode; upper case is folded', () => {
    const r = parse({ domain: 'Bücher.Example', upstreams: [{ host: '[::1]', port: 80 }] });
    expect(r.success).toBe(true);
    if (r.success) {
      expect(r.data.domain).toBe('xn--bcher-kva.example');
      expect(r.data.upstreams[0].host).toBe('::1');
    }
  });

  it('whatever passes validation lands in the file as one plain token and nothing else', () => {
    const render = (domain: string) =>
      renderRouteConfig({
        route: {
          name: 'n-1',
          domain,
          upstreams: [{ host: domain, port: 65535, weight: 100 }],
          require_healthy: true,
          enable_ssl: false,
          health_path: '/h',
          websocket: true,
          lb: 'least_conn',
          paths: [],
          max_body_size: '64m',
          access_log: true,
          created_at: '',
          updated_at: '',
        },
        servers: [{ address: '10.0.0.1', port: 65535, weight: 100 }],
        listen: { address: '127.0.0.1', httpPort: 8080, httpsPort: 8443, publicHttpsPort: 8443 },
        webroot: '/srv/webroot',
        accessLog: '/l/access.log',
      });
    const template = render('placeholder.test');
    for (const input of ['ok.test', 'Bücher.Example', 'a-b.c-d.test', 'localhost', '1x.test']) {
      const r = parse({ domain: input, upstreams: [{ host: input, port: 80 }] });
      expect(r.success).toBe(true);
      if (!r.success) continue;
      expect(r.data.domain).not.toMatch(FORBIDDEN);
      expect(r.data.domain).toMatch(/^[a-z0-9.-]+$/);
      // Same structure as the template: the value only fills the domain's slots.
      expect(render(r.data.domain)).toBe(template.split('placeholder.test').join(r.data.domain));
    }
  });

  it.each(HOSTILE.filter((v) => /[;{}\s$"'#`\\\u0000%]/.test(v)))(
    'the renderer itself refuses %j even if validation were bypassed',
    (value) => {
      expect(() =>
        renderRouteConfig({
          route: {
            name: 'n-1',
            domain: value,
            upstreams: [],
            require_healthy: true,
            enable_ssl: false,
            health_path: '/h',
            websocket: false,
            lb: 'round_robin',
            paths: [],
            max_body_size: '64m',
            access_log: true,
            created_at: '',
            updated_at: '',
          },
          servers: [],
          listen: { address: '127.0.0.1', httpPort: 8080, httpsPort: 8443, publicHttpsPort: 8443 },
          webroot: '/srv/webroot',
          accessLog: '/l/access.log',
        }),
      ).toThrow(UnsafeConfigValue);
    },
  );

  it('a hand-written hostile value in the routes bucket is dropped, not rendered', () => {
    expect(parseStoredRoute('ok', { domain: 'x.test; return 200', upstreams: [{ host: '127.0.0.1', port: 80 }] })).toBeUndefined();
    expect(parseStoredRoute('bad;name', { domain: 'x.test', upstreams: [{ host: '127.0.0.1', port: 80 }] })).toBeUndefined();
    expect(parseStoredRoute('ok', { domain: 'x.test', upstreams: [{ host: '127.0.0.1', port: 80 }] })?.domain).toBe('x.test');
  });
});

describe('per-route settings reach the file only as plain tokens', () => {
  const route = {
    name: 'n-1',
    domain: 'ok.test',
    upstreams: [{ host: '10.0.0.1', port: 80, weight: 1 }],
    require_healthy: true,
    enable_ssl: false,
    health_path: '/h',
    websocket: false,
    lb: 'round_robin' as const,
    paths: [],
    max_body_size: '64m',
    access_log: true,
    created_at: '',
    updated_at: '',
  };
  const input = {
    servers: [{ address: '10.0.0.1', port: 80, weight: 1 }],
    listen: { address: '127.0.0.1', httpPort: 8080, httpsPort: 8443, publicHttpsPort: 8443 },
    webroot: '/srv/webroot',
    accessLog: '/l/access.log',
  };
  it.each(['1m;', '1m }', '1m\nx', '$x', '"1m"'])('the renderer refuses max_body_size %j even if validation were bypassed', (v) => {
    expect(() => renderRouteConfig({ ...input, route: { ...route, max_body_size: v } })).toThrow(UnsafeConfigValue);
  });
  it.each(['/a;', '/a }', '/a\n', '/$uri', "/a'"])('the renderer refuses path prefix %j even if validation were bypassed', (v) => {
    const paths = [{ prefix: v, upstreams: [{ host: '10.0.0.2', port: 80, weight: 1 }], websocket: false, lb: 'round_robin' as const }];
    expect(() => renderRouteConfig({ ...input, route: { ...route, paths } })).toThrow(UnsafeConfigValue);
  });
  it.each(['https://x.test/;', 'https://x.test/}', 'https://x.test/\n', 'https://x.test/$host', 'https://x.test/"'])(
    'the renderer refuses redirect URL %j even if validation were bypassed',
    (to) => {
      const redirect = { to, status: 301, keep_path: true };
      expect(() => renderRouteConfig({ ...input, route: { ...route, upstreams: [], redirect } })).toThrow(UnsafeConfigValue);
    },
  );
});
