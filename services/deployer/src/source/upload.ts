import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Request } from 'express';
import type busboy from 'busboy';
import { InvalidRequest, PayloadTooLarge } from '@droplet-mesh/udc-kit';

export interface UploadedArchive {
  path: string;
  filename: string;
  bytes: number;
  sha256: string;
}

export interface MultipartDeploy {
  fields: Record<string, string>;
  archive: UploadedArchive;
}

/**
 * Read a `multipart/form-data` deploy: text fields plus one `.tar.gz` file (field
 * `source`), streamed to `dir` with a size limit (413 beyond it).
 */
export async function readMultipartDeploy(req: Request, dir: string, maxBytes: number): Promise<MultipartDeploy> {
  mkdirSync(dir, { recursive: true });
  // busboy is loaded by the first upload deploy, not at start (issue 16, idle RSS).
  const { default: openBusboy } = await import('busboy');
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = openBusboy({ headers: req.headers, limits: { fileSize: maxBytes, files: 1, fields: 20, fieldSize: 64 * 1024 } });
    } catch {
      reject(new InvalidRequest('multipart body has no boundary'));
      return;
    }
    const fields: Record<string, string> = {};
    let archive: UploadedArchive | undefined;
    let failure: Error | undefined;
    let writing: Promise<void> = Promise.resolve();
    const fail = (e: Error) => {
      failure ??= e;
    };
    bb.on('field', (name, value) => {
      fields[name] = value;
    });
    bb.on('file', (name, stream, info) => {
      if (name !== 'source') {
        fail(new InvalidRequest(`unexpected file field '${name}'; send the archive as 'source'`));
        stream.resume();
        return;
      }
      const path = join(dir, `${randomUUID()}.tar.gz`);
      const hash = createHash('sha256');
      let bytes = 0;
      let head: Buffer | undefined;
      const out = createWriteStream(path);
      stream.on('data', (c: Buffer) => {
        head ??= c.subarray(0, 2);
        bytes += c.length;
        hash.update(c);
      });
      stream.on('limit', () => fail(new PayloadTooLarge(`archive is larger than ${Math.round(maxBytes / 1024 / 1024)} MB`)));
      writing = new Promise<void>((res) => {
        out.on('close', () => res());
        out.on('error', (e) => (fail(e), res()));
      });
      stream.pipe(out);
      stream.on('end', () => {
        if (!head || head[0] !== 0x1f || head[1] !== 0x8b) fail(new InvalidRequest('source must be a .tar.gz archive (gzip)'));
        archive = { path, filename: (info.filename || 'source.tar.gz').slice(0, 200), bytes, sha256: hash.digest('hex') };
      });
    });
    bb.on('error', (e) => fail(new InvalidRequest(`multipart body could not be read: ${(e as Error).message}`)));
    bb.on('close', () => {
      void writing.then(() => {
        if (failure || !archive) {
          if (archive) rmSync(archive.path, { force: true });
          return reject(failure ?? new InvalidRequest("multipart deploy needs a file field 'source' (.tar.gz)"));
        }
        resolve({ fields, archive });
      });
    });
    req.pipe(bb);
  });
}
