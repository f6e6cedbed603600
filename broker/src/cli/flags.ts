import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Setting } from '../config/settings.js';
import { envName } from '../config/settings.js';

export type ParsedFlags = Record<string, string | boolean | undefined>;

export class UsageError extends Error {
  override name = 'UsageError';
}

/** Parses flags strictly: an unknown flag or a missing value is a usage error naming the flag. */
export function parseFlags(argv: string[], options: NonNullable<ParseArgsConfig['options']>): ParsedFlags {
  try {
    const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
    return values as ParsedFlags;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function settingOptions(settings: readonly Setting[]): NonNullable<ParseArgsConfig['options']> {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const s of settings) options[s.flag] = { type: s.type === 'boolean' ? 'boolean' : 'string' };
  return options;
}

export function settingsHelp(settings: readonly Setting[]): string {
  const width = Math.max(...settings.map((s) => s.flag.length + (s.type === 'boolean' ? 0 : 6))) + 4;
  return settings.map((s) => {
    const flag = `--${s.flag}${s.type === 'boolean' ? '' : ' <' + (s.type === 'integer' ? 'n' : 'v') + '>'}`;
    return `  ${flag.padEnd(width)}${s.help}  [${envName(s.flag)}]`;
  }).join('\n');
}
