import { isLoopbackHost } from '../../../src/mqtt/listeners.js';

describe('loopback listener classification (local-only mode allows anonymous clients only there)', () => {
  test.each(['127.0.0.1', '127.1.2.3', '::1', 'localhost'])('%s is loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });
  test.each(['0.0.0.0', '::', '192.0.2.2', '10.0.0.1', 'fd00::2', '128.0.0.1', 'example.com'])('%s is not loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });
});
