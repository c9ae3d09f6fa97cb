import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { KV } from '@nats-io/kv';
import type { Logger } from '@droplet-mesh/udc-kit';
import { watchUpdates, type KeyChange, type KeyWatch } from '../store/kv-watch.js';
import { CertStore, type CertPaths } from './cert-store.js';
import type { SealedKey } from './shared-certs.js';
import { checkUpload, covers, type CheckedUpload, type UploadedCertInfo } from './upload-check.js';

interface StoredUpload {
  info: UploadedCertInfo;
  chain_pem: string;
  key: SealedKey;
  uploaded_at: string;
}

export interface KeySealer {
  sealKey(aad: string, keyPem: Buffer): SealedKey;
  openKey(aad: string, key: SealedKey): Buffer;
}

const ID = /^[0-9a-f]{16}$/;
const keyOf = (id: string) => `upload.${id}`;

/**
 * Certificates an operator uploaded (own CA, wildcard), shared by every replica through the
 * certificates bucket as `upload.<id>`, the key sealed like issued ones (bound to its KV key).
 * Each replica keeps them on disk under `certs/_uploaded/<id>/` for nginx and an index in
 * memory; the routes of every domain a valid one covers serve it instead of an ACME one.
 */
export class UploadedCerts {
  private byId = new Map<string, UploadedCertInfo>();
  /** One change at a time: the watch echoes our own writes while they are still being installed. */
  private turn: Promise<unknown> = Promise.resolve();
  readonly files: CertStore;

  constructor(
    private kv: KV,
    private sealer: KeySealer,
    dir: string,
    private logger: Logger,
    private now: () => number = Date.now,
  ) {
    this.files = new CertStore(dir);
  }

  /** Every stored upload onto disk and into the index (start-up). */
  async load(): Promise<void> {
    const ids: string[] = [];
    for await (const k of await this.kv.keys('upload.>')) ids.push(k.slice('upload.'.length));
    await Promise.all(
      ids
        .filter((id) => ID.test(id))
        .map((id) =>
          this.sync(id).catch((err) =>
            this.logger.warn(
              { action: 'cert.upload', id, result: 'failed', reason: (err as Error).message },
              'cannot install an uploaded certificate',
            ),
          ),
        ),
    );
  }

  /**
   * Follow a write of `upload.<id>` (another replica's, or the echo of our own): install it
   * or drop it. `changed` is false when this replica already had exactly that.
   */
  sync(id: string): Promise<{ info?: UploadedCertInfo; changed: boolean }> {
    return this.serially(() => this.syncNow(id));
  }

  private serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.turn.then(task, task);
    this.turn = run.catch(() => undefined);
    return run;
  }

  private async syncNow(id: string): Promise<{ info?: UploadedCertInfo; changed: boolean }> {
    if (!ID.test(id)) return { changed: false };
    const e = await this.kv.get(keyOf(id));
    if (e?.operation !== 'PUT' || e.length === 0) {
      const had = await this.drop(id);
      return { info: had, changed: !!had };
    }
    if (this.byId.has(id) && existsSync(this.files.paths(id).key)) return { info: this.byId.get(id), changed: false };
    let checked: CheckedUpload;
    try {
      const v = e.json<StoredUpload>();
      // Checked again as if uploaded: a hand-written value cannot serve a wrong key or name.
      checked = checkUpload(v.chain_pem, this.sealer.openKey(keyOf(id), v.key).toString('utf8'), this.now());
      if (checked.info.id !== id) throw new Error('the certificate does not belong under this id');
    } catch (err) {
      this.logger.warn(
        { action: 'cert.upload', id, result: 'refused', reason: (err as Error).message },
        'stored uploaded certificate ignored',
      );
      const had = await this.drop(id);
      return { info: had, changed: !!had };
    }
    await this.install(checked);
    return { info: checked.info, changed: true };
  }

  private async install(c: CheckedUpload): Promise<void> {
    await this.files.save(c.info.id, c.keyPem, c.chainPem);
    this.byId.set(c.info.id, c.info);
  }

  private async drop(id: string): Promise<UploadedCertInfo | undefined> {
    const had = this.byId.get(id);
    this.byId.delete(id);
    await rm(this.files.paths(id).dir, { recursive: true, force: true });
    return had;
  }

  /** Store (sealed) for every replica, then install here. */
  add(c: CheckedUpload): Promise<UploadedCertInfo> {
    return this.serially(() => this.addNow(c));
  }

  private async addNow(c: CheckedUpload): Promise<UploadedCertInfo> {
    const value: StoredUpload = {
      info: c.info,
      chain_pem: c.chainPem,
      key: this.sealer.sealKey(keyOf(c.info.id), c.keyPem),
      uploaded_at: new Date(this.now()).toISOString(),
    };
    await this.kv.put(keyOf(c.info.id), JSON.stringify(value));
    await this.install(c);
    return c.info;
  }

  remove(id: string): Promise<UploadedCertInfo | undefined> {
    return this.serially(() => this.removeNow(id));
  }

  private async removeNow(id: string): Promise<UploadedCertInfo | undefined> {
    const info = this.byId.get(id);
    if (!info) return undefined;
    await this.kv.delete(keyOf(id));
    await this.drop(id);
    return info;
  }

  get(id: string): UploadedCertInfo | undefined {
    return this.byId.get(id);
  }

  list(): UploadedCertInfo[] {
    return [...this.byId.values()].sort((a, b) => a.not_after.localeCompare(b.not_after) || a.id.localeCompare(b.id));
  }

  /** The valid upload covering `domain` that lasts longest, with its files. */
  findFor(domain: string): { info: UploadedCertInfo; paths: CertPaths } | undefined {
    const now = this.now();
    const best = [...this.byId.values()]
      .filter((c) => Date.parse(c.not_after) > now && Date.parse(c.not_before) <= now && covers(c.names, domain))
      .sort((a, b) => b.not_after.localeCompare(a.not_after) || a.id.localeCompare(b.id))[0];
    return best ? { info: best, paths: this.files.paths(best.id) } : undefined;
  }

  /** Other replicas' uploads and deletions (keys `upload.<id>`). */
  watch(onChange: (c: KeyChange) => void): Promise<KeyWatch> {
    return watchUpdates(this.kv, 'upload.>', onChange);
  }
}
