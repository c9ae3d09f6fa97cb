#!/usr/bin/env node
// `pnpm emulate`: the three provider emulators on 127.0.0.1 until Ctrl-C.
import { z } from 'zod';
import { startAllEmulators } from './start-all.js';

const port = z.coerce.number().int().min(0).max(65535);
const envSchema = z.object({
  EMULATOR_TOKEN: z.string().min(1).default('test-token'),
  EMULATOR_SEED_INSTANCES: z.coerce.number().int().min(0).default(3),
  EMULATOR_LATENCY_MS: z.coerce.number().min(0).default(0),
  EMULATOR_ACTION_MS: z.coerce.number().min(0).default(1500),
  DO_EMULATOR_PORT: port.default(0),
  HETZNER_EMULATOR_PORT: port.default(0),
  VULTR_EMULATOR_PORT: port.default(0),
});

const parsed = envSchema.safeParse(process.env);
if (!parsed.success) {
  for (const issue of parsed.error.issues) process.stderr.write(`cloud-emulators: ${issue.path.join('.')}: ${issue.message}\n`);
  process.exit(2);
}
const env = parsed.data;

const all = await startAllEmulators({
  token: env.EMULATOR_TOKEN,
  seedInstances: env.EMULATOR_SEED_INSTANCES,
  latencyMs: env.EMULATOR_LATENCY_MS,
  actionDurationMs: env.EMULATOR_ACTION_MS,
  digitalocean: { port: env.DO_EMULATOR_PORT },
  hetzner: { port: env.HETZNER_EMULATOR_PORT },
  vultr: { port: env.VULTR_EMULATOR_PORT },
});

process.stdout.write(
  [
    'Cloud API emulators running (Ctrl-C stops). Base URLs; API paths follow them with /v2/..., /v1/..., /v2/...:',
    `  DO_API_URL=${all.digitalocean.url} DO_TOKEN=${all.digitalocean.token}`,
    `  HETZNER_API_URL=${all.hetzner.url} HETZNER_TOKEN=${all.hetzner.token}`,
    `  VULTR_API_URL=${all.vultr.url} VULTR_TOKEN=${all.vultr.token}`,
    '',
  ].join('\n'),
);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void all.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
