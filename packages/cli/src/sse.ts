import { createParser, type EventSourceMessage } from 'eventsource-parser';

export interface SseMessage {
  /** The `event:` field; `message` when absent (as in the EventSource spec). */
  event: string;
  data: string;
  id?: string;
}

/**
 * Server-Sent Events from a byte stream (a fetch body): one message per blank-line-ended
 * block; comments (`: keep-alive`) and `retry:` lines are dropped, and a block cut off by
 * the end of the stream is discarded, as the spec says.
 */
export async function* readSse(chunks: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let ready: SseMessage[] = [];
  const parser = createParser({
    onEvent: (m: EventSourceMessage) => {
      ready.push({ event: m.event ?? 'message', data: m.data, ...(m.id !== undefined ? { id: m.id } : {}) });
    },
  });
  for await (const chunk of chunks) {
    parser.feed(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    if (ready.length) {
      const batch = ready;
      ready = [];
      yield* batch;
    }
  }
  parser.feed(decoder.decode());
  yield* ready;
}

/** `data` as JSON, or undefined when it is not JSON. */
export function sseJson<T>(m: SseMessage): T | undefined {
  try {
    return JSON.parse(m.data) as T;
  } catch {
    return undefined;
  }
}
