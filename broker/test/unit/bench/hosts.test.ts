import { BenchUsageError, parseBenchArgs, parseHostList } from '../../../src/bench/args.js';
import { clientEndpoint, endpointFor, endpointOf } from '../../../src/bench/clients.js';

describe('cluster-oriented flags: --hosts, --sub-hosts, --publish-delay', () => {
  it('parses a host list in order, IPv6 in brackets included', () => {
    expect(parseHostList('--hosts', '127.0.0.1:1883, node-b:2000,[::1]:3000')).toEqual([
      { host: '127.0.0.1', port: 1883 }, { host: 'node-b', port: 2000 }, { host: '::1', port: 3000 },
    ]);
  });

  it('takes --hosts as the connection targets, the first one also as host/port', () => {
    const invocation = parseBenchArgs(['sub', '--hosts', 'a:1,b:2,c:3', '--count', '100']);
    expect(invocation).toMatchObject({ options: { host: 'a', port: 1, hosts: [{ host: 'a', port: 1 }, { host: 'b', port: 2 }, { host: 'c', port: 3 }] } });
  });

  it('defaults hosts to the single --host/--port, and localhost:1883 without either', () => {
    expect(parseBenchArgs(['conn'])).toMatchObject({ options: { host: 'localhost', port: 1883, hosts: [{ host: 'localhost', port: 1883 }] } });
    expect(parseBenchArgs(['conn', '--host', 'h', '--port', '9'])).toMatchObject({ options: { hosts: [{ host: 'h', port: 9 }] } });
  });

  it('puts pub subscribers on --sub-hosts, or on the publishers\' brokers by default', () => {
    expect(parseBenchArgs(['pub', '--hosts', 'r1:1', '--sub-hosts', 'c1:2,c2:3'])).toMatchObject({
      options: { hosts: [{ host: 'r1', port: 1 }], subHosts: [{ host: 'c1', port: 2 }, { host: 'c2', port: 3 }] },
    });
    expect(parseBenchArgs(['pub', '--port', '7'])).toMatchObject({ options: { subHosts: [{ host: 'localhost', port: 7 }] } });
  });

  it('takes --publish-delay in seconds, 0 by default', () => {
    expect(parseBenchArgs(['pub'])).toMatchObject({ options: { publishDelayS: 0 } });
    expect(parseBenchArgs(['pub', '--subscribers', '1', '--publish-delay', '0.2'])).toMatchObject({ options: { publishDelayS: 0.2 } });
    expect(() => parseBenchArgs(['pub', '--publish-delay=-1'])).toThrow(/--publish-delay must be >= 0/);
  });

  it.each([
    [['sub', '--hosts', 'a:1', '--host', 'b'], /replaces --host/],
    [['sub', '--hosts', 'a:1', '--port', '2'], /replaces --host/],
    [['sub', '--hosts', 'a:1,,b:2'], /empty entry/],
    [['sub', '--hosts', 'a'], /not host:port/],
    [['sub', '--hosts', ':1883'], /not host:port/],
    [['sub', '--hosts', 'a:0'], /port from 1 to 65535/],
    [['sub', '--hosts', 'a:x1'], /port from 1 to 65535/],
    [['pub', '--sub-hosts', 'a:70000'], /--sub-hosts/],
    [['sub', '--sub-hosts', 'a:1'], /Unknown option/],
  ])('rejects %j', (argv, message) => {
    expect(() => parseBenchArgs(argv)).toThrow(BenchUsageError);
    expect(() => parseBenchArgs(argv)).toThrow(message);
  });

  it('connects client i to the ((i - 1) mod n)-th broker', () => {
    const invocation = parseBenchArgs(['sub', '--hosts', 'a:1,b:2,[::1]:3']);
    if (invocation?.command !== 'sub') throw new Error('expected a sub invocation');
    const { options } = invocation;
    expect([1, 2, 3, 4, 5, 6, 7].map((i) => endpointFor(options, i).host)).toEqual(['a', 'b', '::1', 'a', 'b', '::1', 'a']);
    expect(clientEndpoint(options, 3)).toBe('[::1]:3');
    expect(endpointOf(options)).toBe('a:1,b:2,[::1]:3');
  });
});
