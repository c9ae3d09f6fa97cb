// Images to two servers: the mesh image registry (push once, both pull the digest in
// parallel) against export/import (`docker save` from the builder, `docker load` into each
// server in turn, through the deployer), through the deployer's own distributeImage, on
// three namespaced Docker Engines (a builder and two servers) and the real docker-registry.
// Two cases: a first deploy (every layer is new to the servers) and the next deploy (one
// small new layer on the same ~100 MB base). Needs root (ip netns, dockerd) and docker-registry.
// Run: corepack pnpm run build at the root, then
//   cd services/deployer && node --import tsx ../../bench/images/run.ts
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerEngine } from '../../services/deployer/src/engine/container-engine.js';
import { createMeshCa, issueCertificate } from '../../services/deployer/src/domain/mesh-ca.js';
import { distributeImage } from '../../services/deployer/src/registry/image-transport.js';
import {
  buildImageFromDir,
  copyImages,
  ensureDockerEngine,
  ensureNodeBaseImage,
  startNamespacedEngine,
  startTestImageRegistry,
  trustTestRegistry,
} from '../../services/deployer/test/image-bench-kit.js';

const host = await ensureDockerEngine();
const base = await ensureNodeBaseImage(host);
const work = mkdtempSync(join(tmpdir(), 'bench-images-'));
/** An app image: the node base plus one small layer of its own. */
async function appImage(tag: string, text: string): Promise<string> {
  const dir = mkdtempSync(join(work, 'ctx-'));
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${base}\nCOPY app.txt /app/app.txt\n`);
  writeFileSync(join(dir, 'app.txt'), text);
  return buildImageFromDir(host, dir, tag, {}, { 'mesh.bench': 'images' });
}
const app1 = await appImage('mesh-bench/images:v1', `one ${Date.now()}`);
const app2 = await appImage('mesh-bench/images:v2', `two ${Date.now()}`);
const size = (await host.getImage(app1).inspect()).Size;

const ca = await createMeshCa();
const engines = [] as Awaited<ReturnType<typeof startNamespacedEngine>>[];
const undo: Array<() => void> = [];
let registry: Awaited<ReturnType<typeof startTestImageRegistry>> | undefined;
const log = () => undefined;
const signal = new AbortController().signal;
try {
  for (let i = 0; i < 3; i++)
    engines.push(
      await startNamespacedEngine({
        tls: async (address) => {
          const c = await issueCertificate(ca, { kind: 'server', commonName: `b${i}`, addresses: [address] });
          return { ca: ca.certPem, cert: c.cert, key: c.key };
        },
      }),
    );
  registry = await startTestImageRegistry({ address: engines[0].hostAddress });
  for (const e of engines) undo.push(trustTestRegistry(e, registry));
  const mesh = { host: registry.host, auth: registry.auth };
  await copyImages(host, engines[0].docker, [app1, app2]);
  const builder = { serverId: 'builder', engine: new DockerEngine(engines[0].docker) };
  const servers = engines.slice(1).map((e, i) => ({ serverId: `s${i + 1}`, engine: new DockerEngine(e.docker) }));
  /** Remove every image from the two servers (their layers go with them). */
  const clean = async (refs?: string[]) => {
    for (const e of engines.slice(1))
      for (const i of await e.docker.listImages())
        if (!refs || (i.RepoTags ?? []).some((t) => refs.includes(t))) await e.docker.getImage(i.Id).remove({ force: true });
  };
  const timed = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  const regTag = (v: string) => `${registry!.host}/mesh-apps/bench-images:${v}`;
  await engines[0].docker.getImage(app1).tag({ repo: `${registry.host}/mesh-apps/bench-images`, tag: 'v1' });
  await engines[0].docker.getImage(app2).tag({ repo: `${registry.host}/mesh-apps/bench-images`, tag: 'v2' });

  // First deploy: nothing on the servers.
  const eiFull = await timed(() => distributeImage({ tag: app1, builder, others: servers, log, signal }));
  await clean();
  const regFull = await timed(() => distributeImage({ tag: regTag('v1'), builder, others: servers, registry: mesh, log, signal }));
  // Next deploy: the servers hold v1's layers in both cases; v2 adds one small layer.
  const regNext = await timed(() => distributeImage({ tag: regTag('v2'), builder, others: servers, registry: mesh, log, signal }));
  await clean([regTag('v2')]);
  const eiNext = await timed(() => distributeImage({ tag: app2, builder, others: servers, log, signal }));

  const mb = (size / 1e6).toFixed(0);
  const row = (what: string, reg: number, ei: number) =>
    `| ${what.padEnd(44)} | ${`${(ei / 1000).toFixed(2)} s`.padStart(13)} | ${`${(reg / 1000).toFixed(2)} s`.padStart(9)} | ${`${(reg / ei).toFixed(2)}×`.padStart(24)} |`;
  console.log(`image: node base + one small layer, ${mb} MB; two servers\n`);
  console.log('| case                                         | export/import |  registry | registry ÷ export/import |');
  console.log('| -------------------------------------------- | ------------: | --------: | -----------------------: |');
  console.log(row('first deploy (every layer new)', regFull, eiFull));
  console.log(row('next deploy (one new small layer)', regNext, eiNext));
} finally {
  for (const u of undo) u();
  await registry?.stop();
  await Promise.allSettled(engines.map((e) => e.stop()));
  for (const t of [app1, app2])
    await host
      .getImage(t)
      .remove()
      .catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
}
