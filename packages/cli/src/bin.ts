#!/usr/bin/env node
import { run } from './program.js';

// A closed pipe (`meshctl routes ls | head -1`) is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
});
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`error: INTERNAL_ERROR: ${reason instanceof Error ? reason.message : String(reason)}\n`);
  process.exit(1);
});

const code = await run(process.argv.slice(2));
// Exit once both streams are flushed: idle keep-alive sockets must not hold the process open.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
