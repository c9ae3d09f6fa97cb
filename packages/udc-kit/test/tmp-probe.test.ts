import { it } from '@jest/globals';
import { request as httpRequest, Agent } from 'node:http';
import { startTestAuthority, startNatsServer } from '../src/testing/index.js';
import { captureStream, createTestDroplet } from './helpers.js';
function send(url: string, method: string, headers: Record<string,string>, body: string | undefined, agent?: Agent) {
  return new Promise<string>((resolve) => {
    const req = httpRequest(url, { method, headers, agent }, (res) => { let t = ''; res.on('data', c => t += c); res.on('end', () => resolve(`${res.statusCode} ${t.slice(0,200)}`)); });
    req.on('error', (e) => resolve('ERR ' + e.message));
    req.end(body);
  });
}
it('probe', async () => {
  const a = await startTestAuthority(); const n = await startNatsServer();
  const cap = captureStream();
  const d = createTestDroplet({ env: { ...a.env(), NATS_URL: n.url }, logDestination: cap.stream, exit: () => undefined });
  const { url } = await d.start({ port: 0 });
  const body = '[{"a":null},"VjZ",true]';
  for (const m of ['DELETE', 'POST', 'GET']) for (const enc of ['br', 'gzip', 'identity'])
    console.log(m, enc, await send(`${url}/events`, m, { 'content-encoding': enc, 'content-type': 'application/json', authorization: `Bearer ${a.mint()}` }, body));
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 3; i++) console.log('ka', await send(`${url}/events`, 'DELETE', { 'content-encoding': 'br', 'content-type': 'application/json' }, body, agent));
  console.log(cap.lines().filter(l => l.level >= 40).map(l => JSON.stringify(l).slice(0, 300)).join('\n'));
  agent.destroy();
  await d.stop(); await a.close(); await n.stop({ removeStore: true });
});
