import { BENCH_HELP, BenchUsageError, parseBenchArgs } from '../../../src/bench/args.js';

describe('parseBenchArgs', () => {
  it('returns undefined for help requests', () => {
    expect(parseBenchArgs([])).toBeUndefined();
    expect(parseBenchArgs(['--help'])).toBeUndefined();
    expect(parseBenchArgs(['pub', '--qos', '1', '--help'])).toBeUndefined();
  });

  it('parses a pub run with subscribers and defaults the subscriber side to the publisher side', () => {
    const invocation = parseBenchArgs(['pub', '--count', '10', '--subscribers', '10', '--qos', '2', '--port', '1999', '--json']);
    expect(invocation?.command).toBe('pub');
    if (invocation?.command !== 'pub') return;
    expect(invocation.json).toBe(true);
    expect(invocation.options).toMatchObject({
      host: 'localhost', port: 1999, count: 10, subscribers: 10, qos: 2, subQos: 2, topic: 'bench/%i', subTopic: 'bench/%i',
      rate: 0, durationS: 10, inflight: 20, payloadSize: 256, clean: true, protocolVersion: 4, e2eWindow: 0,
    });
  });

  it('accepts the wildcard sub template from the cluster issue', () => {
    const invocation = parseBenchArgs(['sub', '--count', '1000', '--topic', 't/bench/+/%i/sub/+/#']);
    expect(invocation).toMatchObject({ command: 'sub', options: { count: 1000, topics: ['t/bench/+/%i/sub/+/#'], qos: 0 } });
  });

  it('gives sub the default topic and takes several --topic flags as several subscriptions per client', () => {
    expect(parseBenchArgs(['sub'])).toMatchObject({ options: { topics: ['bench/%i'] } });
    expect(parseBenchArgs(['sub', '--topic', 'a/%i', '--topic', 'b/%i/#'])).toMatchObject({ options: { topics: ['a/%i', 'b/%i/#'] } });
    expect(() => parseBenchArgs(['sub', '--topic', 'a/%i', '--topic', 'b/#/c'])).toThrow(/last/);
  });

  it('parses conn flags, credentials and seconds-to-milliseconds conversion', () => {
    const invocation = parseBenchArgs(['conn', '--hold', '2.5', '--username', 'u', '--password', 'p', '--connect-timeout', '3', '--clean', 'false']);
    expect(invocation).toMatchObject({
      command: 'conn', json: false, options: { holdS: 2.5, username: 'u', password: 'p', connectTimeoutMs: 3000, clean: false, count: 1000 },
    });
  });

  it.each([
    [['bogus'], /unknown bench command/],
    [['pub', '--topic', 'a/+/b'], /wildcard/],
    [['sub', '--topic', 'a/#/b'], /last/],
    [['pub', '--qos', '3'], /--qos must be <= 2/],
    [['pub', '--payload-size', '10'], /--payload-size must be >= 20/],
    [['pub', '--duration', '0'], /bounds every pub run/],
    [['conn', '--count', '1.5'], /whole number/],
    [['conn', '--port', 'http'], /must be a number/],
    [['conn', '--clean', 'yes'], /true or false/],
    [['conn', '--protocol-version', '3'], /protocol-version/],
    [['conn', '--topic', 'x'], /Unknown option/],
    [['sub', '--rate', '5'], /Unknown option/],
  ])('rejects %j', (argv, message) => {
    expect(() => parseBenchArgs(argv)).toThrow(BenchUsageError);
    expect(() => parseBenchArgs(argv)).toThrow(message);
  });

  it('documents every flag each command accepts', () => {
    const flags = ['--host', '--port', '--username', '--password', '--count', '--interval', '--concurrency', '--client-id-prefix',
      '--clean', '--keepalive', '--connect-timeout', '--protocol-version', '--json', '--help', '--hold', '--ready-file', '--topic',
      '--qos', '--duration', '--messages', '--payload-size', '--rate', '--inflight', '--subscribers', '--e2e-window', '--sub-topic',
      '--sub-qos', '--drain-timeout', '--hosts', '--sub-hosts', '--publish-delay'];
    for (const flag of flags) expect(BENCH_HELP).toContain(`${flag} `);
  });
});
