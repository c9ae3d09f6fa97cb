import { lstat, readdir, readFile, readlink, rename, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const SITE_FILE = /^mesh-([a-z0-9-]{1,63})\.conf$/;

/** What was on disk at one path before we touched it: bytes, a symlink target, or nothing. */
type Snapshot =
  | { path: string; kind: 'file'; bytes: Buffer }
  | { path: string; kind: 'link'; target: string }
  | { path: string; kind: 'absent' };

async function snapshot(path: string): Promise<Snapshot> {
  try {
    const st = await lstat(path);
    if (st.isSymbolicLink()) return { path, kind: 'link', target: await readlink(path) };
    return { path, kind: 'file', bytes: await readFile(path) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { path, kind: 'absent' };
    throw err;
  }
}

async function removeIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

async function writeAtomically(path: string, data: string | Buffer): Promise<void> {
  // The temp name does not end in .conf, so a half-written file is never included.
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode: 0o644 });
  await rename(tmp, path);
}

/**
 * A set of changes to the route files that can be undone byte for byte: every path is
 * snapshotted the first time it is touched, and `rollback()` puts each back exactly.
 */
export class SiteChangeSet {
  private snapshots = new Map<string, Snapshot>();
  constructor(private sites: SiteFiles) {}

  private async remember(path: string): Promise<void> {
    if (!this.snapshots.has(path)) this.snapshots.set(path, await snapshot(path));
  }

  /** Write `mesh-<name>.conf` and link it into sites-enabled; false when the bytes were already there. */
  async write(name: string, text: string): Promise<boolean> {
    const file = this.sites.availablePath(name);
    const link = this.sites.enabledPath(name);
    await this.remember(file);
    await this.remember(link);
    let changed = false;
    const current = await snapshot(file);
    if (current.kind !== 'file' || !current.bytes.equals(Buffer.from(text))) {
      await writeAtomically(file, text);
      changed = true;
    }
    const currentLink = await snapshot(link);
    if (currentLink.kind !== 'link' || currentLink.target !== file) {
      await removeIfPresent(link);
      await symlink(file, link);
      changed = true;
    }
    return changed;
  }

  async remove(name: string): Promise<boolean> {
    const file = this.sites.availablePath(name);
    const link = this.sites.enabledPath(name);
    await this.remember(file);
    await this.remember(link);
    const had = this.snapshots.get(file)?.kind !== 'absent' || this.snapshots.get(link)?.kind !== 'absent';
    await removeIfPresent(link);
    await removeIfPresent(file);
    return had;
  }

  /** Undo only the paths belonging to one route (used when isolating a bad change). */
  async rollbackRoute(name: string): Promise<void> {
    for (const p of [this.sites.enabledPath(name), this.sites.availablePath(name)]) {
      const s = this.snapshots.get(p);
      if (s) await restore(s);
    }
  }

  async rollback(): Promise<void> {
    // Links first (so nothing points at a missing file mid-way), then files.
    const all = [...this.snapshots.values()];
    for (const s of all.filter((x) => x.path.startsWith(this.sites.enabledDir))) await restore(s);
    for (const s of all.filter((x) => !x.path.startsWith(this.sites.enabledDir))) await restore(s);
  }

  get touched(): string[] {
    return [...this.snapshots.keys()];
  }
}

async function restore(s: Snapshot): Promise<void> {
  if (s.kind === 'absent') return removeIfPresent(s.path);
  if (s.kind === 'link') {
    await removeIfPresent(s.path);
    return symlink(s.target, s.path);
  }
  await writeAtomically(s.path, s.bytes);
}

export class SiteFiles {
  constructor(
    readonly availableDir: string,
    readonly enabledDir: string,
  ) {}

  availablePath(name: string): string {
    return join(this.availableDir, `mesh-${name}.conf`);
  }
  enabledPath(name: string): string {
    return join(this.enabledDir, `mesh-${name}.conf`);
  }

  changeSet(): SiteChangeSet {
    return new SiteChangeSet(this);
  }

  /** Names of routes that have a file or a link on disk. */
  async presentNames(): Promise<string[]> {
    const names = new Set<string>();
    for (const dir of [this.availableDir, this.enabledDir]) {
      for (const f of await readdir(dir).catch(() => [] as string[])) {
        const m = SITE_FILE.exec(f);
        if (m) names.add(m[1]);
      }
    }
    return [...names];
  }
}
