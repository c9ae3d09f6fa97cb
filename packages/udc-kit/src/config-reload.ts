import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { ConfigError, type Env } from './config.js';

/**
 * Where a droplet's env file is: `ENV_FILE` when set, else `<DATA_DIR>/<droplet>.env`.
 * One file per droplet, so a setting such as PORT never leaks from one droplet into another.
 */
export function envFilePath(dropletName: string, env: Env): string {
  if (env.ENV_FILE) return resolve(env.ENV_FILE);
  return resolve(env.DATA_DIR || './.mesh', `${dropletName}.env`);
}

/** The file's variables (dotenv syntax), or undefined when there is no file. Never echoes values. */
export function readEnvFile(path: string): Env | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new ConfigError([{ variable: 'ENV_FILE', problem: `cannot read ${path} (${code ?? 'error'})` }]);
  }
  return parseEnv(text);
}

/** The environment a merged one was made from, so a reload lays the file over that again (a line removed from the file reverts). */
const WITHOUT_FILE = Symbol('environment without the env file');

/**
 * The process environment with the env file laid over it: the file wins, because a running
 * process cannot see its own environment change, and the file is what an operator edits.
 * main.ts passes the result to its factory; /reload-config calls this again on it.
 */
export function environmentWithFile(dropletName: string, env: Env): Env {
  const base = (env as { [WITHOUT_FILE]?: Env })[WITHOUT_FILE] ?? env;
  const file = readEnvFile(envFilePath(dropletName, base));
  const merged: Env = file ? { ...base, ...file } : { ...base };
  Object.defineProperty(merged, WITHOUT_FILE, { value: base, enumerable: false });
  return merged;
}

export interface ReloadPlan<C> {
  /** Every setting whose value differs, sorted. */
  changed: string[];
  /** Changed settings applied now. */
  live: string[];
  /** Changed settings that take effect only after a restart (the old value stays in force). */
  needs_restart: string[];
  /** The configuration in force after the reload: live settings from next, the rest from prev. */
  applied: C;
}

/** What a reload changes; values are compared, never reported. */
export function planReload<C extends object>(prev: C, next: C, liveKeys: ReadonlySet<string>): ReloadPlan<C> {
  const p = prev as Record<string, unknown>;
  const n = next as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(p), ...Object.keys(n)])].sort();
  const changed = keys.filter((k) => JSON.stringify(p[k]) !== JSON.stringify(n[k]));
  const live = changed.filter((k) => liveKeys.has(k));
  const applied = { ...p } as Record<string, unknown>;
  for (const k of live) applied[k] = n[k];
  return { changed, live, needs_restart: changed.filter((k) => !liveKeys.has(k)), applied: applied as C };
}

/** How a droplet applies settings live; LOG_LEVEL is always live (udc-kit applies it). */
export interface LiveConfig<C> {
  /** Settings this droplet applies without a restart. */
  keys: readonly (keyof C & string)[];
  /** Called with the configuration about to be in force and the live settings that changed; throw to refuse. */
  apply(config: C, changed: string[]): Promise<void> | void;
}
