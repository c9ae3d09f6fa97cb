import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type Docker from 'dockerode';
import * as tar from 'tar';

/** Build an image from a directory holding a Dockerfile, through the Engine API (no registry needed). */
export async function buildImageFromDir(
  docker: Docker,
  dir: string,
  tag: string,
  buildargs: Record<string, string> = {},
  labels: Record<string, string> = {},
): Promise<string> {
  // noMtime: under jest's VM realm node-tar writes PAX mtimes as strings, which the Engine refuses.
  const context = tar.c({ cwd: dir, portable: true, noMtime: true }, ['.']);
  const stream = await docker.buildImage(context as unknown as NodeJS.ReadableStream, {
    t: tag,
    buildargs,
    labels,
    rm: true,
    forcerm: true,
  });
  const output: string[] = [];
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err, res) => {
        if (err) return reject(err);
        const failed = (res as Array<{ error?: string }>).find((r) => r.error);
        if (failed) return reject(new Error(`docker build ${tag} failed: ${failed.error}\n${output.slice(-20).join('')}`));
        resolve();
      },
      (ev: { stream?: string }) => {
        if (ev.stream) output.push(ev.stream);
      },
    );
  });
  return tag;
}

async function imageExists(docker: Docker, tag: string, label?: [string, string]): Promise<boolean> {
  try {
    const info = await docker.getImage(tag).inspect();
    return !label || info.Config?.Labels?.[label[0]] === label[1];
  } catch {
    return false;
  }
}

const BUSYBOX_APPLETS = ['sh', 'sleep', 'httpd', 'cat', 'echo', 'ls', 'mkdir', 'wget', 'env', 'true', 'false', 'nc', 'kill', 'ps'];

/** Copy busybox into `root/bin` with its applets as symlinks. */
function addBusybox(root: string): void {
  const bb = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  if (!bb) throw new Error('busybox is not installed (apt-get install busybox-static)');
  mkdirSync(join(root, 'bin'), { recursive: true });
  copyFileSync(bb, join(root, 'bin/busybox'));
  for (const a of BUSYBOX_APPLETS) symlinkSync('busybox', join(root, 'bin', a));
  mkdirSync(join(root, 'tmp'), { recursive: true });
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(
    join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\n',
  );
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\nnode:x:1000:\n');
}

/** A tiny FROM-scratch image with static busybox (sh, httpd, sleep, wget, nc). */
export async function ensureBusyboxImage(docker: Docker, tag = 'mesh-test/busybox:latest'): Promise<string> {
  if (await imageExists(docker, tag)) return tag;
  const dir = mkdtempSync(join(tmpdir(), 'mesh-busybox-'));
  try {
    addBusybox(join(dir, 'root'));
    writeFileSync(join(dir, 'Dockerfile'), 'FROM scratch\nCOPY root/ /\nCMD ["/bin/sh"]\n');
    return await buildImageFromDir(docker, dir, tag);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A Node base image built FROM scratch from this host's node binary and the libraries
 * `ldd` lists (plus busybox for a shell), since no image registry is reachable.
 */
export async function ensureNodeBaseImage(docker: Docker, tag = 'mesh-local/node:20'): Promise<string> {
  const nodeBin = realpathSync(process.execPath);
  if (await imageExists(docker, tag, ['mesh.node-version', process.version])) return tag;
  const dir = mkdtempSync(join(tmpdir(), 'mesh-node-base-'));
  try {
    const root = join(dir, 'root');
    addBusybox(root);
    const copyIn = (src: string) => {
      const dest = join(root, src);
      mkdirSync(dirname(dest), { recursive: true });
      copyFileSync(realpathSync(src), dest);
    };
    copyIn(nodeBin);
    if (nodeBin !== '/usr/local/bin/node') {
      mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
      symlinkSync(nodeBin, join(root, 'usr/local/bin/node'));
    }
    const ldd = execFileSync('ldd', [nodeBin], { encoding: 'utf8' });
    for (const m of ldd.matchAll(/(\/[^\s]+\.so[^\s]*)/g)) copyIn(m[1]);
    for (const f of ['/etc/ssl/certs/ca-certificates.crt']) if (existsSync(f)) copyIn(f);
    mkdirSync(join(root, 'app'), { recursive: true });
    mkdirSync(join(root, 'home/node'), { recursive: true });
    writeFileSync(
      join(dir, 'Dockerfile'),
      `FROM scratch\nCOPY root/ /\nENV PATH=/usr/local/bin:/usr/bin:/bin\nWORKDIR /app\nCMD ["node"]\n`,
    );
    return await buildImageFromDir(docker, dir, tag, {}, { 'mesh.node-version': process.version });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * How a test app serves: busybox httpd on $PORT on every interface of its container (apps run
 * on the mesh's bridge network, reached through their published port, not on the host's loopback).
 */
export const HTTPD = 'exec httpd -f -p 0.0.0.0:$PORT -h /www';

/**
 * A small web app image FROM the local busybox: httpd on $PORT serving `files` from /www
 * (files under cgi-bin/ are executable and answer as CGI scripts), with a writable /tmp as
 * real base images have (apps run as a non-root user). Built once per tag and content.
 */
export async function buildWebImage(
  docker: Docker,
  busybox: string,
  tag: string,
  files: Record<string, string>,
  cmd?: string,
): Promise<string> {
  const dockerfile = `FROM ${busybox}\nCOPY www /www\nRUN ["/bin/busybox", "chmod", "1777", "/tmp"]\nCMD ${cmd ?? JSON.stringify(['/bin/sh', '-c', HTTPD])}\n`;
  const busyboxId = (await docker.getImage(busybox).inspect()).Id;
  const digest = createHash('sha256')
    .update(JSON.stringify([busyboxId, dockerfile, files]))
    .digest('hex')
    .slice(0, 16);
  const built = await docker
    .getImage(tag)
    .inspect()
    .then(
      (i) => i.Config?.Labels?.['mesh.test-build'],
      () => undefined,
    );
  if (built === digest) return tag;
  const dir = mkdtempSync(join(tmpdir(), 'web-img-'));
  try {
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, 'www', path)), { recursive: true });
      writeFileSync(join(dir, 'www', path), text, { mode: path.startsWith('cgi-bin/') ? 0o755 : 0o644 });
    }
    writeFileSync(join(dir, 'Dockerfile'), dockerfile);
    return await buildImageFromDir(docker, dir, tag, {}, { 'mesh.test-build': digest });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
