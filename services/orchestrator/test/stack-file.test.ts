import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parseStackSource, StackFileError } from '../src/domain/stack-parse.js';
import { stackNameProblems } from '../src/domain/resources.js';
import { stackJsonSchema } from '../src/domain/stack-schema.js';

const YAML = `
version: 1
servers:
  edge:
    provider: hetzner
    region: fsn1
    size: cx22
    image: ubuntu-24.04
    count: 2
    tags: [edge]
projects:
  shop:
    description: The shop
    environments:
      prod:
        env: { LOG_LEVEL: info }
        secrets: [DATABASE_URL]
        services:
          web:
            image: shop/web:1.2
            domain: shop.example.com
            https: true
            replicas: 2
          jobs:
            type: worker
            image: shop/jobs:1.2
      uat:
        services:
          web:
            image: shop/web:1.3
            domain: uat.shop.example.com
routes:
  docs:
    domain: docs.example.com
    upstreams: [{ host: 10.0.0.5, port: 8080 }]
`;

function problems(input: unknown) {
  try {
    parseStackSource(input);
  } catch (err) {
    if (err instanceof StackFileError) return err.fields;
    throw err;
  }
  throw new Error('expected the file to be refused');
}

describe('stack file', () => {
  it('parses YAML with defaults filled in', () => {
    const f = parseStackSource(YAML);
    expect(f.servers.edge).toEqual({ provider: 'hetzner', region: 'fsn1', size: 'cx22', image: 'ubuntu-24.04', count: 2, tags: ['edge'] });
    const web = f.projects.shop.environments.prod.services.web;
    expect(web).toMatchObject({ type: 'web', replicas: 2, health_path: '/health', https: true, env: {}, secrets: [] });
    expect(f.projects.shop.environments.prod.services.jobs.type).toBe('worker');
    expect(f.routes.docs.require_healthy).toBe(true);
  });

  it('parses the same file as JSON text and as a JSON value', () => {
    const f = parseStackSource(YAML);
    expect(parseStackSource(JSON.stringify(f))).toEqual(f);
    expect(parseStackSource(JSON.parse(JSON.stringify(f)))).toEqual(f);
  });

  it('refuses unknown keys and wrong types with the path in the file', () => {
    expect(problems({ projects: { shop: { environments: { prod: { services: { web: { image: 'x', replica: 2 } } } } } } })).toEqual([
      expect.objectContaining({ path: 'projects.shop.environments.prod.services.web', code: 'unrecognized_keys' }),
    ]);
    expect(problems({ servers: { a: { provider: 'aws', region: 'r', size: 's', image: 'i', count: 'two' } } })).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: 'servers.a.provider' }),
        expect.objectContaining({ path: 'servers.a.count' }),
      ]),
    );
    expect(problems({ projects: { Shop: {} } })[0].path).toBe('projects.Shop');
  });

  it('refuses secret values: a secrets map, a secret-looking env var, a private key', () => {
    const map = problems({ projects: { p: { environments: { prod: { secrets: { DB_PASSWORD: 'hunter2' } } } } } });
    expect(map).toEqual([expect.objectContaining({ path: 'projects.p.environments.prod.secrets', code: 'secret_value' })]);
    expect(map[0].message).toMatch(/names only/);
    const env = problems({
      projects: { p: { environments: { prod: { services: { web: { image: 'x', env: { STRIPE_API_KEY: 'sk_live_1' } } } } } } },
    });
    expect(env).toEqual([
      expect.objectContaining({ path: 'projects.p.environments.prod.services.web.env.STRIPE_API_KEY', code: 'secret_value' }),
    ]);
    const pem = problems({ projects: { p: { description: '-----BEGIN RSA PRIVATE KEY-----\nabc' } } });
    expect(pem[0].path).toBe('projects.p.description');
  });

  it('refuses cross-field mistakes: a domain used twice, a worker with a domain, https without a domain, names too long', () => {
    const f = {
      projects: {
        p: {
          environments: {
            prod: {
              services: {
                a: { image: 'x', domain: 'a.example.com' },
                w: { type: 'worker', image: 'x', domain: 'w.example.com' },
                h: { image: 'x', https: true },
                'a-very-long-service-name-here': { image: 'x' },
              },
            },
          },
        },
      },
      routes: { r: { domain: 'a.example.com', upstreams: [{ host: '127.0.0.1', port: 1 }] } },
    };
    const paths = problems(f).map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'routes.r.domain',
        'projects.p.environments.prod.services.w.domain',
        'projects.p.environments.prod.services.h.https',
        'projects.p.environments.prod.services.a-very-long-service-name-here',
      ]),
    );
  });

  it('a service runs an image or builds from git, never both or neither; no credentials in a git URL', () => {
    const svc = (s: object) => ({ projects: { p: { environments: { prod: { services: { web: s } } } } } });
    const at = 'projects.p.environments.prod.services.web';
    expect(
      parseStackSource(svc({ git: { url: 'https://example.com/repo.git', ref: 'v1' } })).projects.p.environments.prod.services.web.git,
    ).toEqual({
      url: 'https://example.com/repo.git',
      ref: 'v1',
    });
    expect(problems(svc({}))).toEqual([expect.objectContaining({ path: `${at}.image`, message: 'give exactly one of image and git' })]);
    expect(problems(svc({ image: 'x', git: { url: 'https://example.com/r.git' } }))[0].path).toBe(`${at}.image`);
    expect(problems(svc({ git: { url: 'https://user:tok@example.com/r.git' } }))).toEqual([
      expect.objectContaining({ path: `${at}.git.url` }),
    ]);
    expect(problems(svc({ git: { url: 'https://example.com/r.git', ref: '--upload-pack=x' } }))[0].path).toBe(`${at}.git.ref`);
  });

  it('refuses a cycle (an alias inside the node it names) with its path, and keeps shared aliases', () => {
    expect(problems('projects: &p\n  shop:\n    environments: *p\n')).toEqual([
      { path: 'projects.shop.environments', message: 'a cycle: this alias refers back to projects, which contains it', code: 'cycle' },
    ]);
    expect(problems('servers:\n  a: &s\n    x: *s\n').map((p) => p.path)).toEqual(['servers.a.x']);
    // The same node used twice is not a cycle.
    const shared = parseStackSource('projects:\n  p:\n    environments:\n      prod: &e { env: { LOG_LEVEL: info } }\n      uat: *e\n');
    expect(shared.projects.p.environments.uat.env).toEqual({ LOG_LEVEL: 'info' });
  });

  it('refuses YAML that does not parse, with the line', () => {
    const p = problems('servers:\n  a: [unclosed\n');
    expect(p[0].message).toMatch(/line \d+/);
    expect(problems('- a list')[0].message).toMatch(/object/);
  });

  it('instance names must stay hostnames: the stack name counts', () => {
    const f = parseStackSource({
      servers: { 'a-rather-long-server-name-here': { provider: 'hetzner', region: 'r', size: 's', image: 'i', count: 12 } },
    });
    expect(stackNameProblems('short', f)).toEqual([]);
    expect(stackNameProblems('a-rather-long-stack-name-as-well', f)).toEqual([
      expect.objectContaining({ path: 'servers.a-rather-long-server-name-here' }),
    ]);
  });

  it('placement names servers of this stack; engine names one machine', () => {
    const f = (placement: unknown, count = 2, engine?: string) => ({
      servers: { edge: { provider: 'hetzner', region: 'fsn1', size: 'cx22', image: 'u', count, ...(engine ? { engine } : {}) } },
      projects: { shop: { environments: { prod: { services: { web: { image: 'a:1', placement } } } } } },
    });
    expect(problems(f(['edge', 'nowhere']))).toEqual([
      {
        path: 'projects.shop.environments.prod.services.web.placement.1',
        message: "no server 'nowhere' in servers: (a service is placed on this stack's servers)",
        code: 'custom',
      },
    ]);
    expect(problems(f(['edge'], 0)).map((p) => p.path)).toEqual(['projects.shop.environments.prod.services.web.placement.0']);
    expect(problems(f(['edge'], 2, 'local')).map((p) => p.path)).toEqual(['servers.edge.engine']);
    expect(problems(f('edge')).map((p) => p.path)).toEqual(['projects.shop.environments.prod.services.web.placement']);
    expect(parseStackSource(f(['edge'], 1, 'local')).servers.edge.engine).toBe('local');
  });

  it('alerts: emails and http(s) webhooks without credentials; unknown keys refused with their path', () => {
    const f = (alerts: unknown) => ({ alerts });
    expect(problems(f({ webhooks: ['https://user:pw@hooks.example.com/x'] })).map((p) => p.path)).toEqual(['alerts.webhooks.0']);
    expect(
      problems(f({ emails: ['not-an-email'], pager: 'x' }))
        .map((p) => p.path)
        .sort(),
    ).toEqual(['alerts', 'alerts.emails.0']);
    expect(problems(f({ webhooks: ['ftp://example.com/'] })).map((p) => p.path)).toEqual(['alerts.webhooks.0']);
    expect(parseStackSource(f({ emails: ['ops@example.com'] })).alerts).toEqual({ emails: ['ops@example.com'], webhooks: [] });
  });

  it('alerts: a webhook URL that looks like it carries a token is refused with its path and where such a URL goes', () => {
    const f = (webhooks: string[]) => ({ alerts: { webhooks } });
    for (const url of [
      'https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX',
      'https://discord.com/api/webhooks/123456789012345678/aBcDeFgHiJkLmNoPqRsTuVwXyZ012345',
      'https://alerts.example.com/hook?token=abc',
      'https://alerts.example.com/hook?api_key=abc',
      'https://alerts.example.com/in/3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c',
    ]) {
      const p = problems(f(['https://ok.example.com/mesh', url]));
      expect(p).toEqual([expect.objectContaining({ path: 'alerts.webhooks.1' })]);
      expect(p[0].message).toMatch(/looks like it carries a token .*ALERT_WEBHOOK_URLS/);
      expect(JSON.stringify(p)).not.toContain(url.split('/').pop());
    }
    // Ordinary paths and parameters pass.
    for (const url of ['https://alerts.example.com/notifications-webhook-receiver', 'https://alerts.example.com/hook?team=ops&v=2'])
      expect(parseStackSource(f([url])).alerts?.webhooks).toEqual([url]);
  });

  it('the committed stack.schema.json is the schema zod publishes', () => {
    const committed = JSON.parse(readFileSync(new URL('../stack.schema.json', import.meta.url), 'utf8'));
    expect(committed).toEqual(stackJsonSchema());
    expect(committed.additionalProperties).toBe(false);
  });
});
