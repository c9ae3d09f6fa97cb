import { lstatSync } from 'node:fs';
import type { ReadEntry } from 'tar';

export class UnsafeArchive extends Error {}

/**
 * Extract a .tar.gz into `dir`: only files and directories (no links, devices or
 * absolute/.. paths), bounded in entry count and total size.
 */
export async function extractTarball(file: string, dir: string, limits: { maxBytes: number; maxEntries: number }): Promise<void> {
  let bytes = 0;
  let entries = 0;
  let problem: string | undefined;
  // tar is loaded by the first upload deploy, not at start (issue 16, idle RSS).
  const tar = await import('tar');
  await tar.x({
    file,
    cwd: dir,
    gzip: true,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    filter: (path, entry) => {
      const type = (entry as ReadEntry).type;
      if (type !== 'File' && type !== 'Directory' && type !== 'OldFile' && type !== 'ContiguousFile') {
        problem ??= `${path}: ${type} entries are not allowed`;
        return false;
      }
      if (path.startsWith('/') || path.split(/[\\/]/).includes('..')) {
        problem ??= `${path}: path leaves the archive`;
        return false;
      }
      entries += 1;
      bytes += (entry as ReadEntry).size ?? 0;
      if (entries > limits.maxEntries) problem ??= `more than ${limits.maxEntries} entries`;
      if (bytes > limits.maxBytes) problem ??= `more than ${limits.maxBytes} bytes unpacked`;
      return !problem;
    },
  });
  if (problem) throw new UnsafeArchive(`archive refused: ${problem}`);
  if (!lstatSync(dir).isDirectory()) throw new UnsafeArchive('archive refused: nothing extracted');
}
