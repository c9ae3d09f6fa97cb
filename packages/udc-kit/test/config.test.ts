import { afterEach, describe, expect, it, jest, test } from '@jest/globals';
import { z } from 'zod';
import { baseConfigSchema, baseConfigShape, ConfigError, configOrExit, parseConfig } from '../src/config.js';
import { dropletIdFromToken, dropletIdToken, heartbeatSubject } from '../src/droplet-id.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfig', () => {
  it('applies the documented defaults', () => {
    const c = parseConfig(baseConfigSchema, { PORT: '8123' });
    expect(c).toMatchObject({
      PORT: 8123,
      HOST: '127.0.0.1',
      NATS_URL: 'nats://127.0.0.1:4222',
      REGISTRY_URL: 'http://127.0.0.1:8000',
      JWT_ISSUER: 'droplet-mesh-registry',
      JWT_AUDIENCE: 'droplet-mesh',
      DATA_DIR: './.mesh',
      LOG_LEVEL: 'info',
      ALLOW_SIMPLE_TOKEN: false,
      HEARTBEAT_INTERVAL_S: 30,
      BODY_LIMIT: '1mb',
    });
  });

  test.each([
    ['true', true],
    ['1', true],
    ['yes', true],
    ['false', false],
    ['0', false],
    ['', false],
  ])('ALLOW_SIMPLE_TOKEN=%p means %p', (v, want) => {
    const c = parseConfig(baseConfigSchema, { PORT: '1', ALLOW_SIMPLE_TOKEN: v, API_TOKEN: 'a-long-enough-token-1234' });
    expect(c.ALLOW_SIMPLE_TOKEN).toBe(want);
  });

  test.each([
    ['PORT', { PORT: 'eighty' }],
    ['PORT', { PORT: '70000' }],
    ['NATS_URL', { PORT: '1', NATS_URL: 'http://127.0.0.1:4222' }],
    ['REGISTRY_URL', { PORT: '1', REGISTRY_URL: 'not a url' }],
    ['LOG_LEVEL', { PORT: '1', LOG_LEVEL: 'loud' }],
    ['ALLOW_SIMPLE_TOKEN', { PORT: '1', ALLOW_SIMPLE_TOKEN: 'maybe' }],
    ['API_TOKEN', { PORT: '1', API_TOKEN: 'short' }],
    ['API_TOKEN', { PORT: '1', ALLOW_SIMPLE_TOKEN: 'true' }],
    ['DROPLET_ID', { PORT: '1', DROPLET_ID: 'Bad_Name' }],
    ['BODY_LIMIT', { PORT: '1', BODY_LIMIT: 'lots' }],
    ['HEARTBEAT_INTERVAL_S', { PORT: '1', HEARTBEAT_INTERVAL_S: '-3' }],
  ])('a bad %s is named in a ConfigError', (variable, env) => {
    const err = configError(() => parseConfig(baseConfigSchema, env));
    expect(err.issues.map((i) => i.variable)).toContain(variable);
    expect(err.message).toMatch(new RegExp(`^${variable}: \\S`));
    expect(err.message).not.toContain('\n');
  });

  it('reports every bad variable, one entry each, on one line', () => {
    const err = configError(() => parseConfig(baseConfigSchema, { PORT: 'x', LOG_LEVEL: 'loud', NATS_URL: 'ftp://x' }));
    expect(err.issues.map((i) => i.variable).sort()).toEqual(['LOG_LEVEL', 'NATS_URL', 'PORT']);
    expect(err.message.split('; ')).toHaveLength(3);
    expect(err.message).not.toContain('\n');
    expect(err.message).toContain('NATS_URL: must be a nats:// URL');
  });

  it('an empty optional setting counts as unset (compose passes ${VAR:-} as "")', () => {
    const c = parseConfig(baseConfigSchema, { PORT: '1', API_TOKEN: '', REGISTRY_KEY: '', PUBLIC_URL: '', NATS_USER: '' });
    expect(c.API_TOKEN).toBeUndefined();
    expect(c.REGISTRY_KEY).toBeUndefined();
    expect(c.PUBLIC_URL).toBeUndefined();
    expect(() => parseConfig(baseConfigSchema, { PORT: '1', API_TOKEN: 'short' })).toThrow(/API_TOKEN/);
  });

  it('a missing required variable is named too', () => {
    const err = configError(() => parseConfig(baseConfigSchema, {}));
    expect(err.issues).toEqual([{ variable: 'PORT', problem: expect.any(String) }]);
  });

  it('services extend the shape with their own variables', () => {
    const schema = z.object({
      ...baseConfigShape,
      PORT: baseConfigShape.PORT.default(8100),
      NGINX_BIN: z.string().min(1).default('nginx'),
    });
    expect(parseConfig(schema, {}).PORT).toBe(8100);
    const err = configError(() => parseConfig(schema, { NGINX_BIN: '' }));
    expect(err.issues[0].variable).toBe('NGINX_BIN');
  });
});

describe('configOrExit', () => {
  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('prints one line naming the variable and exits 1', () => {
    const writes: string[] = [];
    jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      writes.push(String(chunk));
      return true;
    });
    const exit = jest.spyOn(process, 'exit').mockImplementation((() => {
      throw new Error('exit called');
    }) as never);
    expect(() => configOrExit(baseConfigSchema, { PORT: '1', LOG_LEVEL: 'loud' })).toThrow('exit called');
    expect(exit).toHaveBeenCalledWith(1);
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatch(/^invalid configuration: LOG_LEVEL: .+\n$/);
    expect(writes[0].trim().split('\n')).toHaveLength(1);
  });

  it('returns the config when it is valid', () => {
    expect(configOrExit(baseConfigSchema, { PORT: '9' }).PORT).toBe(9);
  });
});

describe('the seeds’ settings and dotted droplet ids', () => {
  it('reads DROPLET_NAME as DROPLET_ID, dotted ids included', () => {
    expect(parseConfig(baseConfigSchema, { PORT: '1', DROPLET_NAME: 'drop4.fullpotential.ai' }).DROPLET_ID).toBe('drop4.fullpotential.ai');
    expect(parseConfig(baseConfigSchema, { PORT: '1', DROPLET_ID: 'web-1', DROPLET_NAME: 'web-1' }).DROPLET_ID).toBe('web-1');
    expect(configError(() => parseConfig(baseConfigSchema, { PORT: '1', DROPLET_ID: 'a', DROPLET_NAME: 'b' })).issues[0].variable).toBe(
      'DROPLET_NAME',
    );
  });

  it('takes DROPLET_DOMAIN (lower-cased) and STEWARD, and names them when invalid', () => {
    const c = parseConfig(baseConfigSchema, { PORT: '1', DROPLET_DOMAIN: 'Drop4.Example.com', STEWARD: 'ops.example.com' });
    expect(c).toMatchObject({ DROPLET_DOMAIN: 'drop4.example.com', STEWARD: 'ops.example.com' });
    expect(configError(() => parseConfig(baseConfigSchema, { PORT: '1', DROPLET_DOMAIN: 'a b' })).issues[0].variable).toBe(
      'DROPLET_DOMAIN',
    );
    expect(configError(() => parseConfig(baseConfigSchema, { PORT: '1', STEWARD: 'a..b' })).issues[0].variable).toBe('STEWARD');
  });

  it.each(['a..b', '.a', 'a.', 'A', 'a_b', 'a.*', 'a.>', `${'x'.repeat(64)}`])('refuses DROPLET_ID %j', (id) => {
    expect(configError(() => parseConfig(baseConfigSchema, { PORT: '1', DROPLET_ID: id })).issues[0].variable).toBe('DROPLET_ID');
  });

  it('encodes a dotted id as one NATS subject token, one-to-one', () => {
    expect(heartbeatSubject('drop4.fullpotential.ai')).toBe('registry.heartbeat.drop4_fullpotential_ai');
    expect(heartbeatSubject('registry')).toBe('registry.heartbeat.registry');
    expect(dropletIdFromToken('drop4_fullpotential_ai')).toBe('drop4.fullpotential.ai');
    expect(dropletIdFromToken('a__b')).toBeUndefined();
    expect(() => dropletIdToken('a b')).toThrow();
  });
});
