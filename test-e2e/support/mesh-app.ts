import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A small Node web app as an uploadable .tar.gz (one top-level directory, package.json with
 * a start script, no dependencies): `/` answers `version`, `/health` answers ok. It listens on
 * every interface of its container: apps run on the mesh's bridge network, reached through
 * their port published on the host's loopback.
 */
export function appTarball(workDir: string, version: string): { file: string; bytes: Buffer } {
  const root = join(workDir, `app-${version}`);
  const src = join(root, 'app');
  mkdirSync(src, { recursive: true });
  writeFileSync(
    join(src, 'package.json'),
    JSON.stringify({ name: 'mesh-e2e-app', version: '1.0.0', private: true, scripts: { start: 'node server.js' } }, null, 2),
  );
  writeFileSync(
    join(src, 'server.js'),
    `const http = require('http');
const VERSION = ${JSON.stringify(version)};
const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain');
  if (req.url === '/health') return res.end('ok');
  res.end(VERSION);
});
server.keepAliveTimeout = 2000;
server.listen(Number(process.env.PORT), () => console.log('app ' + VERSION + ' listening on ' + process.env.PORT));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`,
  );
  const file = join(root, `app-${version}.tar.gz`);
  execFileSync('tar', ['-czf', file, '-C', root, 'app']);
  return { file, bytes: readFileSync(file) };
}
