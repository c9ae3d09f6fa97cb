import { describe, expect, it } from '@jest/globals';
import { ApiError, CliError, UnreachableError, LOGIN_HINT } from '../src/errors.js';
import { errorJson, formatError } from '../src/output.js';
import { age, renderTable } from '../src/table.js';
import { parseUpstream } from '../src/commands/routes.js';
import { parseInstanceId } from '../src/commands/instances.js';
import { parseGitSource } from '../src/commands/deploy.js';
import { logLine } from '../src/commands/logs.js';
import { urlEnvName } from '../src/context.js';

describe('renderTable', () => {
  it('pads columns two spaces apart, right-aligns on request, shows - for empty cells', () => {
    const text = renderTable(
      [
        { header: 'ID', value: (r: { id: string; n?: number }) => r.id },
        { header: 'N', value: (r) => r.n, align: 'right' },
        { header: 'LAST', value: () => null },
      ],
      [
        { id: 'registry', n: 5 },
        { id: 'x', n: 120 },
      ],
    );
    expect(text).toBe(['ID          N  LAST', 'registry    5  -', 'x         120  -', ''].join('\n'));
  });

  it('neutralises control characters so a value cannot break the layout or drive the terminal', () => {
    const text = renderTable([{ header: 'MSG', value: (r: { m: string }) => r.m }], [{ m: 'a\nb\u001b[31mc' }]);
    expect(text).toBe('MSG\na b [31mc\n');
  });

  it('says how long ago', () => {
    const now = Date.parse('2026-11-01T12:00:00Z');
    expect(age('2026-11-01T11:59:55Z', now)).toBe('5s ago');
    expect(age('2026-11-01T11:57:00Z', now)).toBe('3m ago');
    expect(age('2026-10-30T12:00:00Z', now)).toBe('2d ago');
    expect(age(undefined, now)).toBe('-');
  });
});

describe('formatError', () => {
  it('prints the UDC code and message, field errors and the login hint; never a stack', () => {
    const err = new ApiError(400, 'INVALID_REQUEST', 'invalid body', 'http://x/proxies/a', {
      fields: [{ path: 'domain', message: 'must be a valid hostname' }],
    });
    expect(formatError(err)).toBe('error: INVALID_REQUEST: invalid body\n  domain: must be a valid hostname\n');
    const expired = new ApiError(401, 'UNAUTHORIZED', 'token expired', 'http://x', undefined, LOGIN_HINT);
    expect(formatError(expired)).toContain('hint: run `meshctl login');
    expect(formatError(new UnreachableError('deployer at http://127.0.0.1:9/x', 'ECONNREFUSED'))).toBe(
      'error: DEPENDENCY_UNAVAILABLE: could not reach deployer at http://127.0.0.1:9/x: ECONNREFUSED\n',
    );
    const unexpected = formatError(new TypeError('boom\n    at somewhere (file.js:1:2)'));
    expect(unexpected).toBe('error: INTERNAL_ERROR: boom\n');
  });

  it('gives scripts the envelope under --json', () => {
    expect(errorJson(new CliError('NOT_FOUND', 'no route'))).toEqual({
      status: 'error',
      error: { code: 'NOT_FOUND', message: 'no route' },
    });
    expect(errorJson(new ApiError(409, 'CONFLICT', 'taken', 'http://x/p'))).toMatchObject({
      error: { code: 'CONFLICT' },
      http_status: 409,
      url: 'http://x/p',
    });
  });
});

describe('argument parsing', () => {
  it('upstreams: host:port[:weight], IPv6 in brackets', () => {
    expect(parseUpstream('app.internal:8080')).toEqual({ host: 'app.internal', port: 8080 });
    expect(parseUpstream('10.0.0.2:80:5')).toEqual({ host: '10.0.0.2', port: 80, weight: 5 });
    expect(parseUpstream('[::1]:3000')).toEqual({ host: '[::1]', port: 3000 });
    for (const bad of ['nohost', 'h:0', 'h:70000', ':80', 'h:80:x', '::1:80']) expect(() => parseUpstream(bad)).toThrow();
  });

  it('instance ids are <provider>:<id>', () => {
    expect(parseInstanceId('local:abc:def')).toEqual({ provider: 'local', id: 'abc:def' });
    expect(() => parseInstanceId('aws:1')).toThrow(CliError);
    expect(() => parseInstanceId('local:')).toThrow(CliError);
    expect(() => parseInstanceId('1234')).toThrow(CliError);
  });

  it('git sources take an optional #ref', () => {
    expect(parseGitSource('https://git.example/app.git')).toEqual({ url: 'https://git.example/app.git' });
    expect(parseGitSource('https://git.example/app.git#v1.2')).toEqual({ url: 'https://git.example/app.git', ref: 'v1.2' });
    expect(() => parseGitSource('https://git.example/app.git#')).toThrow(CliError);
  });

  it('droplet URL variables are MESHCTL_<DROPLET>_URL', () => {
    expect(urlEnvName('multi-cloud-manager')).toBe('MESHCTL_MULTI_CLOUD_MANAGER_URL');
    expect(urlEnvName('registry')).toBe('MESHCTL_REGISTRY_URL');
  });

  it('log lines: time, level, message, then the other fields', () => {
    expect(
      logLine({ time: '2026-11-01T00:00:00.000Z', level: 'info', msg: 'request', pid: 1, hostname: 'h', droplet: 'registry', status: 200 }),
    ).toBe('2026-11-01T00:00:00.000Z INFO  request {"status":200}');
  });
});
