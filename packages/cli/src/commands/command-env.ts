import type { Command } from 'commander';
import type { Context } from '../context.js';

/** What bin.ts hands every command group: a Context for the running command. */
export interface CommandEnv {
  context(cmd: Command): Context;
}
