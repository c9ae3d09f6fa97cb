import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImageFromDir, ensureBusyboxImage } from '@droplet-mesh/docker-testing';
import type { Docker } from './compose-images.js';

// A tiny web app for the compose deployer: busybox httpd on $PORT, on every interface (the
// app runs with host networking; nginx and the deployer reach it from their containers
// through the host's bridge address, not loopback). `/` answers `text`, `/health` ok.

export async function buildComposeAppImage(docker: Docker, tag: string, text: string): Promise<string> {
  const busybox = await ensureBusyboxImage(docker);
  const dir = mkdtempSync(join(tmpdir(), 'mesh-compose-app-'));
  try {
    mkdirSync(join(dir, 'www'));
    writeFileSync(join(dir, 'www', 'index.html'), text);
    writeFileSync(join(dir, 'www', 'health'), 'ok');
    writeFileSync(
      join(dir, 'Dockerfile'),
      `FROM ${busybox}\nCOPY www /www\nCMD ["/bin/sh", "-c", "exec httpd -f -p 0.0.0.0:$PORT -h /www"]\n`,
    );
    return await buildImageFromDir(docker, dir, tag);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Containers and images the deployer made for `project` (labelled mesh.project): compose `down` does not know them. */
export async function removeDeployedApps(docker: Docker, project: string): Promise<void> {
  const filters = { label: [`mesh.project=${project}`] };
  for (const c of await docker.listContainers({ all: true, filters }))
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  for (const i of await docker.listImages({ filters }))
    await docker
      .getImage(i.Id)
      .remove({ force: true })
      .catch(() => undefined);
}
