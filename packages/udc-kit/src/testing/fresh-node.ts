import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/**
 * Runs `body` (an ES module, top-level await allowed) in a new node with tsx, from `cwd`; returns
 * what it printed last, as JSON. `loaded(pkg)` in the body says whether anything of the package
 * `pkg` has been loaded: what a droplet loads at start, which jest's own module registry does
 * not tell. CommonJS modules are in require.cache; ES modules are noted by a load hook, in a
 * file written before each module is handed over (so the list is complete when read).
 */
export async function inFreshNode(cwd: string, body: string): Promise<Record<string, unknown>> {
  const script = `
    import { createRequire, register } from 'node:module';
    import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
    import { tmpdir } from 'node:os';
    import { join } from 'node:path';
    const esmList = join(mkdtempSync(join(tmpdir(), 'esm-')), 'loaded');
    appendFileSync(esmList, '');
    register('data:text/javascript,' + encodeURIComponent(
      'import { appendFileSync } from "node:fs";' +
      'export async function load(url, context, next) { appendFileSync(' + JSON.stringify(esmList) + ', url + String.fromCharCode(10)); return next(url, context); }'));
    const loaded = (pkg) => [...Object.keys(createRequire(import.meta.url).cache), ...readFileSync(esmList, 'utf8').split(String.fromCharCode(10))]
      .some((k) => k.includes('/node_modules/' + pkg + '/'));
    ${body}`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd,
    env: { ...process.env, NODE_OPTIONS: '' },
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}
