// Removes from a production bundle (`pnpm deploy --prod` output) the files Node never
// loads at run time: source maps, type declarations, TypeScript sources and tests of
// our own packages, build caches. Runs in the first stage of the Dockerfiles with plain
// `node` (the offline base image has no find/rm), so the final stage copies only the rest.
// Usage: node prune-bundle.mjs <bundle dir>
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = process.argv[2];
if (!root) {
  process.stderr.write('usage: node prune-bundle.mjs <bundle dir>\n');
  process.exit(2);
}

const DROP_FILE = /(\.map|\.d\.[cm]?ts|\.tsbuildinfo)$/;
const DROP_DIR = new Set(['.turbo', '.github', 'coverage']);
// Top level of the bundle and of each workspace package copied into it.
const DROP_IN_PACKAGE_ROOT = new Set(['src', 'test', 'jest.config.js', 'tsconfig.json', 'tsconfig.test.json']);

let removed = 0;
const drop = (p) => {
  rmSync(p, { recursive: true, force: true });
  removed++;
};

function isWorkspacePackageRoot(dir) {
  // <root> itself, or .pnpm/@droplet-mesh+x@file+.../node_modules/@droplet-mesh/x
  return dir === root || /[\\/]node_modules[\\/]@droplet-mesh[\\/][^\\/]+$/.test(dir);
}

function walk(dir) {
  const packageRoot = isWorkspacePackageRoot(dir);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (packageRoot && DROP_IN_PACKAGE_ROOT.has(entry.name)) {
      drop(p);
    } else if (entry.isDirectory()) {
      // Type-only packages (@types/*) are never imported at run time.
      if (DROP_DIR.has(entry.name) || (dir.endsWith('.pnpm') && entry.name.startsWith('@types+'))) drop(p);
      else walk(p);
    } else if (entry.isFile() && DROP_FILE.test(entry.name)) {
      drop(p);
    }
  }
}

if (!statSync(root).isDirectory()) throw new Error(`${root} is not a directory`);
walk(root);
process.stdout.write(`pruned ${removed} entries from ${root}\n`);
