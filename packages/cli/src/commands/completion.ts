import type { Command } from 'commander';
import { CliError } from '../errors.js';
import type { CommandEnv } from './command-env.js';

/** Every command path ("meshctl", "meshctl routes", "meshctl routes set", ...) with the words that may follow it. */
export function completionTable(program: Command): Map<string, string[]> {
  const table = new Map<string, string[]>();
  const walk = (cmd: Command, path: string) => {
    const subs = cmd.commands.flatMap((c) => [c.name(), ...c.aliases()]);
    const options = cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x));
    table.set(path, [...subs, ...options, ...(cmd === program ? [] : ['--json', '--help'])]);
    for (const c of cmd.commands) for (const name of [c.name(), ...c.aliases()]) walk(c, `${path} ${name}`);
  };
  // bash's associative arrays refuse an empty key: the top level is "meshctl".
  walk(program, 'meshctl');
  return table;
}

const shellWord = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** A bash completion function over the table: the longest known command path typed so far picks the words offered. */
export function bashCompletion(program: Command): string {
  const entries = [...completionTable(program)].map(([path, words]) => `  [${shellWord(path)}]=${shellWord(words.join(' '))}`);
  return `# meshctl bash completion: eval "$(meshctl completion bash)"
declare -A _meshctl_words=(
${entries.join('\n')}
)
_meshctl() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path=meshctl i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    [[ $w == -* ]] && continue
    if [[ -n \${_meshctl_words["$path $w"]+set} ]]; then path="$path $w"; fi
  done
  COMPREPLY=($(compgen -W "\${_meshctl_words[$path]}" -- "$cur"))
}
complete -F _meshctl meshctl
`;
}

export function registerCompletionCommand(program: Command, _env: CommandEnv): void {
  program
    .command('completion <shell>')
    .description('Print shell completion (bash): eval "$(meshctl completion bash)", e.g. in ~/.bashrc')
    .action((shell: string) => {
      if (shell !== 'bash') throw new CliError('INVALID_REQUEST', `no completion for '${shell}': bash only`);
      process.stdout.write(bashCompletion(program));
    });
}
