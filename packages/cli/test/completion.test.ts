import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { bashCompletion } from '../src/commands/completion.js';
import { buildProgram } from '../src/program.js';

// The generated script, run by the real bash with the words a user typed.
const script = bashCompletion(
  buildProgram({
    context: () => {
      throw new Error('no command runs here');
    },
  }),
);

function complete(line: string): string[] {
  const words = line.split(' ');
  const out = execFileSync(
    'bash',
    [
      '-c',
      `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _meshctl; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { encoding: 'utf8' },
  );
  return out.split('\n').filter(Boolean).sort();
}

describe('meshctl completion bash', () => {
  it('completes commands, subcommands and their options', () => {
    expect(complete('meshctl ba')).toEqual(['backup']);
    expect(complete('meshctl secrets ')).toEqual(expect.arrayContaining(['ls', 'rm', 'set']));
    expect(complete('meshctl secrets set API_KEY --pro')).toEqual(['--project']);
    expect(complete('meshctl --json certs up')).toEqual(['upload']);
    expect(complete('meshctl config reload deployer --')).toEqual(['--help', '--json', '--url']);
  });
});
