import { randomUUID } from 'node:crypto';
import { z } from 'zod';

export const MESSAGE_TYPES = ['status', 'event', 'command', 'query'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

// A droplet name is one NATS subject token (`udc.<name>.message`): no dots, ever. Dotted
// registry ids (drop4.fullpotential.ai) are records, not message targets.
const dropletName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a droplet name: [a-z0-9-], 1-63 chars (no dots)');
const traceId = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 of [A-Za-z0-9._:-]');

export const messageEnvelopeSchema = z.object({
  trace_id: traceId.optional(),
  source: dropletName,
  target: dropletName,
  message_type: z.enum(MESSAGE_TYPES),
  payload: z.record(z.string(), z.unknown()).default({}),
  timestamp: z.iso.datetime({ offset: true }).optional(),
});
export type MessageEnvelope = z.infer<typeof messageEnvelopeSchema> & { trace_id: string; timestamp: string };

export const sendRequestSchema = z.object({
  target: dropletName,
  message_type: z.enum(MESSAGE_TYPES),
  payload: z.record(z.string(), z.unknown()).default({}),
  trace_id: traceId.optional(),
  retry_count: z.number().int().min(0).max(10).default(2),
  timeout_ms: z.number().int().min(50).max(120_000).default(5000),
  priority: z.enum(['low', 'normal', 'high']).default('normal'),
});
export type SendRequest = z.infer<typeof sendRequestSchema>;

export interface MessageReply {
  received: boolean;
  trace_id: string;
  processed_at: string;
  result: 'success' | 'queued' | 'error';
  data?: unknown;
  error?: { code: string; message: string; details?: unknown };
}

export function newTraceId(): string {
  return randomUUID();
}

export function completeEnvelope(e: z.infer<typeof messageEnvelopeSchema>): MessageEnvelope {
  return { ...e, trace_id: e.trace_id ?? newTraceId(), timestamp: e.timestamp ?? new Date().toISOString() };
}

/** A handler may return `queued(data)` to say the work was accepted, not finished. */
const QUEUED = Symbol('queued');
export function queued(data?: unknown): { [QUEUED]: true; data?: unknown } {
  return { [QUEUED]: true, data };
}
export function isQueued(v: unknown): v is { data?: unknown } {
  return typeof v === 'object' && v !== null && QUEUED in v;
}
