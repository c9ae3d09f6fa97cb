import { describe, expect, it } from '@jest/globals';
import { readSse, sseJson, type SseMessage } from '../src/sse.js';

async function* chunksOf(parts: Array<string | Uint8Array>) {
  for (const p of parts) yield p;
}

async function collect(parts: Array<string | Uint8Array>): Promise<SseMessage[]> {
  const out: SseMessage[] = [];
  for await (const m of readSse(chunksOf(parts))) out.push(m);
  return out;
}

// Exactly what the deployer writes (routes/progress-stream.ts), keep-alive comment included.
const stream =
  'event: accepted\ndata: {"id":"d1","status":"queued"}\n\n' +
  ': keep-alive\n\n' +
  'id: 1\nevent: step\ndata: {"seq":1,"type":"step","step":"pull","step_status":"running","percent":0}\n\n' +
  'id: 2\nevent: log\ndata: {"seq":2,"type":"log","message":"héllo wörld ✓"}\n\n' +
  'id: 3\nevent: status\ndata: {"seq":3,"type":"status","status":"succeeded","percent":100}\n\n';

describe('readSse', () => {
  it("parses the deployer's stream: event names, ids, JSON data; comments dropped", async () => {
    const msgs = await collect([stream]);
    expect(msgs.map((m) => m.event)).toEqual(['accepted', 'step', 'log', 'status']);
    expect(msgs[1].id).toBe('1');
    expect(sseJson<{ step: string }>(msgs[1])?.step).toBe('pull');
    expect(sseJson<{ message: string }>(msgs[2])?.message).toBe('héllo wörld ✓');
  });

  it('gives the same messages however the bytes are split, even inside a UTF-8 character', async () => {
    const bytes = new TextEncoder().encode(stream);
    const whole = await collect([bytes]);
    for (let cut = 1; cut < bytes.length; cut += 7) {
      const split = await collect([bytes.subarray(0, cut), bytes.subarray(cut)]);
      expect(split).toEqual(whole);
    }
    const byteByByte = await collect(Array.from(bytes, (b) => Uint8Array.of(b)));
    expect(byteByByte).toEqual(whole);
  });

  it('handles CRLF line ends, multi-line data and the default event name', async () => {
    const msgs = await collect(['data: line one\r\ndata: line two\r\n\r\n', 'event: status\r\ndata: x\r\n\r\n']);
    expect(msgs).toEqual([
      { event: 'message', data: 'line one\nline two' },
      { event: 'status', data: 'x' },
    ]);
  });

  it('drops a block cut off by the end of the stream (no blank line after it)', async () => {
    const msgs = await collect(['event: step\ndata: {"seq":1}\n\n', 'event: status\ndata: {"seq":2,"status":"fa']);
    expect(msgs.map((m) => m.event)).toEqual(['step']);
  });

  it('leaves data that is not JSON to the caller', async () => {
    const [m] = await collect(['event: log\ndata: not json\n\n']);
    expect(sseJson(m)).toBeUndefined();
  });
});
