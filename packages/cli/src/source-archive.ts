import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { create as createTar } from 'tar';
import { CliError } from './errors.js';

/** Never uploaded: VCS data and installed dependencies (the build installs its own). */
export const EXCLUDED_DIRS = new Set(['.git', 'node_modules']);

export interface SourceArchive {
  path: string;
  bytes: number;
  /** Removes the archive and its temporary directory. */
  cleanup(): Promise<void>;
}

/** `--dir PATH` as a .tar.gz in a temporary directory, paths relative to PATH. */
export async function archiveDirectory(dir: string): Promise<SourceArchive> {
  const root = resolve(dir);
  const info = await stat(root).catch(() => undefined);
  if (!info?.isDirectory()) throw new CliError('INVALID_REQUEST', `--dir ${dir} is not a directory`);
  const tmp = await mkdtemp(join(tmpdir(), 'meshctl-'));
  const path = join(tmp, 'source.tar.gz');
  const cleanup = () => rm(tmp, { recursive: true, force: true });
  try {
    await createTar(
      {
        gzip: true,
        file: path,
        cwd: root,
        portable: true,
        filter: (p) => !p.split('/').some((part) => EXCLUDED_DIRS.has(part)),
      },
      ['.'],
    );
  } catch (err) {
    await cleanup();
    throw new CliError('INVALID_REQUEST', `could not archive ${dir}: ${(err as Error).message}`);
  }
  return { path, bytes: (await stat(path)).size, cleanup };
}
