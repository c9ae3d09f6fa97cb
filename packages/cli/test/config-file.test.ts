import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { configPath, readSession, removeSession, writeSession } from '../src/config-file.js';
import { CliError } from '../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'meshctl-cfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('config file', () => {
  it('lives at MESHCTL_CONFIG, else $XDG_CONFIG_HOME/meshctl, else ~/.config/meshctl', () => {
    expect(configPath({ MESHCTL_CONFIG: '/a/b.json', XDG_CONFIG_HOME: '/x' })).toBe('/a/b.json');
    expect(configPath({ XDG_CONFIG_HOME: '/x' })).toBe('/x/meshctl/config.json');
    expect(configPath({ XDG_CONFIG_HOME: 'relative' })).toBe(join(homedir(), '.config', 'meshctl', 'config.json'));
    expect(configPath({})).toBe(join(homedir(), '.config', 'meshctl', 'config.json'));
  });

  it('writes the session with mode 0600 in a 0700 directory and reads it back', async () => {
    const path = join(dir, 'nested', 'meshctl', 'config.json');
    const session = { registry_url: 'http://127.0.0.1:8000', token: 'a.b.c', expires_at: '2026-11-01T00:00:00.000Z' };
    await writeSession(path, session);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'nested', 'meshctl')).mode & 0o777).toBe(0o700);
    expect(await readSession(path)).toEqual(session);
    await writeSession(path, { ...session, token: 'd.e.f' });
    expect((await readSession(path))?.token).toBe('d.e.f');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(await removeSession(path)).toBe(true);
    expect(await readSession(path)).toBeUndefined();
    expect(await removeSession(path)).toBe(false);
  });

  it('refuses a damaged file with a clear error', async () => {
    mkdirSync(join(dir, 'bad'), { recursive: true });
    const garbage = join(dir, 'bad', 'garbage.json');
    writeFileSync(garbage, '{not json');
    await expect(readSession(garbage)).rejects.toThrow(CliError);
    const wrong = join(dir, 'bad', 'wrong.json');
    writeFileSync(wrong, JSON.stringify({ token: 1 }));
    await expect(readSession(wrong)).rejects.toThrow(/does not hold a meshctl session/);
  });
});
