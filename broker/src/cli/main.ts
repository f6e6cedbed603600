#!/usr/bin/env node
import { ConfigError } from '../config/errors.js';
import { UsageError } from './flags.js';

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  broker: { summary: 'run a broker node', load: async () => (await import('./broker.js')).runBrokerCommand },
  passwd: { summary: 'add, update or delete a user in a broker users file', load: async () => (await import('./passwd.js')).runPasswdCommand },
  operator: { summary: 'run the Kubernetes operator (RegionalCluster, ClusterLink)', load: async () => (await import('../../../operator/src/cli.js')).runOperatorCommand },
  bench: { summary: 'load-test an MQTT broker (conn | sub | pub)', load: async () => (await import('./bench.js')).runBenchCommand },
  'link-agent': { summary: 'run the cluster-link agent as a sidecar beside a regional cluster', load: async () => (await import('./link-agent.js')).runLinkAgentCommand },
};

function mainHelp(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)}${c.summary}`).join('\n');
  return `Usage: meridian <command> [flags]\n\nCommands:\n${rows}\n\nRun 'meridian <command> --help' for the flags of a command.\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(mainHelp());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`meridian: unknown command '${name}'\n\n${mainHelp()}`);
    return 2;
  }
  try {
    return await (await command.load())(rest);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`meridian ${name}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, (err: unknown) => {
  process.stderr.write(`meridian: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
