import { loadBrokerConfig } from '../config/load.js';
import { BROKER_SETTINGS } from '../config/settings.js';
import { createLogger } from '../log/logger.js';
import { BrokerNode } from '../node/node.js';
import { parseFlags, settingOptions, settingsHelp } from './flags.js';

export const BROKER_HELP = `Usage: meridian broker [flags]

Runs one broker node. With no flags and no config file it starts in local-only mode: MQTT on 127.0.0.1:1883
(anonymous clients allowed on loopback listeners only), admin HTTP on 127.0.0.1:8081, data in ./data/<node-name>.
Precedence: embedded defaults < --config file < MERIDIAN_* environment < flags.

Flags:
  --config <file>           YAML configuration file  [MERIDIAN_CONFIG]
${settingsHelp(BROKER_SETTINGS)}
  -h, --help                this help
`;

/** Runs `meridian broker` until SIGTERM/SIGINT; resolves with the process exit code. */
export async function runBrokerCommand(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, { ...settingOptions(BROKER_SETTINGS), config: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (flags.help) {
    process.stdout.write(BROKER_HELP);
    return 0;
  }
  const file = (flags.config as string | undefined) ?? (process.env.MERIDIAN_CONFIG || undefined);
  const config = loadBrokerConfig({ file, flags, env: process.env });
  const logger = createLogger(config.log.level, { node: config.node.name });
  const node = new BrokerNode(config, logger);
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, 'stopping');
      node.stop().then(() => resolve(0), (err: unknown) => {
        logger.error({ err }, 'stop failed');
        resolve(1);
      });
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  try {
    await node.start();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'node failed to start');
    await node.stop().catch(() => undefined);
    return 1;
  }
  return stopped;
}
