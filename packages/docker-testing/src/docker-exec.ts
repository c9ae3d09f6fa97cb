import type Docker from 'dockerode';

/** Run a command inside a running container (as its own user, in its own network namespace); output and exit code, bounded. */
export async function execIn(
  docker: Docker,
  containerId: string,
  cmd: string[],
  timeoutMs = 20_000,
): Promise<{ output: string; code: number | null }> {
  const exec = await docker.getContainer(containerId).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      stream.destroy();
      reject(new Error(`exec ${cmd.join(' ')} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    stream.on('end', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const info = await exec.inspect();
  return { output: demux(Buffer.concat(chunks)), code: info.ExitCode ?? null };
}

/** Exec output comes multiplexed (8-byte frame headers) without a TTY. */
function demux(buf: Buffer): string {
  const out: Buffer[] = [];
  let off = 0;
  while (off + 8 <= buf.length && buf[off] <= 2 && buf[off + 1] === 0) {
    const len = buf.readUInt32BE(off + 4);
    out.push(buf.subarray(off + 8, off + 8 + len));
    off += 8 + len;
  }
  return off === 0 ? buf.toString('utf8') : Buffer.concat(out).toString('utf8');
}

/**
 * What a TCP connection from inside the container to host:port reads within 2 s (NATS
 * greets with INFO, HTTP answers a request); empty when nothing answers.
 */
export async function probeFrom(docker: Docker, containerId: string, host: string, port: number): Promise<string> {
  const { output } = await execIn(docker, containerId, [
    '/bin/sh',
    '-c',
    `printf 'GET /health HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} ${port} 2>/dev/null; true`,
  ]);
  return output;
}
