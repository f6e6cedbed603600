export interface ConfigIssue {
  /** Where the problem is: a key path such as `listeners[0].port`, a flag such as `--mqtt-port`, or an env var. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  constructor(readonly source: string, readonly issues: ConfigIssue[]) {
    super(`invalid configuration (${source}):\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}
