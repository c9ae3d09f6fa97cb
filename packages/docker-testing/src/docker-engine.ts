import { spawn } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import Docker from 'dockerode';

const SOCKET = '/var/run/docker.sock';

async function pings(docker: Docker): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

/**
 * A Docker Engine that answers: the one behind DOCKER_HOST or the local socket, or a
 * `dockerd` started here (left running for later suites; it is the machine's engine).
 */
export async function ensureDockerEngine(timeoutMs = 60_000): Promise<Docker> {
  const docker = process.env.DOCKER_HOST ? new Docker() : new Docker({ socketPath: SOCKET });
  if (await pings(docker)) return docker;
  if (process.env.DOCKER_HOST) throw new Error(`Docker at DOCKER_HOST=${process.env.DOCKER_HOST} does not answer`);
  if (!existsSync('/usr/sbin/dockerd') && !existsSync('/usr/bin/dockerd'))
    throw new Error('dockerd is not installed (apt-get install docker.io)');
  const log = openSync('/tmp/mesh-dockerd.log', 'a');
  const child = spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log] });
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pings(docker)) return docker;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`dockerd did not answer within ${timeoutMs} ms (see /tmp/mesh-dockerd.log)`);
}
