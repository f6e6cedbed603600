import { pino } from 'pino';
import { Discovery, formatAddress, resolveAllAddresses } from '../../../src/cluster/discovery.js';

const logger = pino({ level: 'silent' });

describe('cluster discovery', () => {
  test('static seeds minus this node, sorted and de-duplicated', async () => {
    const seen: string[][] = [];
    const discovery = new Discovery({ seeds: ['b:1', 'a:1', 'self:1', 'a:1'], clusterPort: 1, intervalMs: 1000, self: 'self:1', logger }, (p) => seen.push(p));
    expect(await discovery.refresh()).toEqual(['a:1', 'b:1']);
    expect(seen).toEqual([['a:1', 'b:1']]);
  });

  test('DNS records become addresses on the cluster port, and a failed lookup keeps the last set', async () => {
    let answer: string[] | Error = ['10.0.0.2', '10.0.0.1', 'fd00::5'];
    const resolve = async (): Promise<string[]> => {
      if (answer instanceof Error) throw answer;
      return answer;
    };
    const discovery = new Discovery({ seeds: [], dnsName: 'meridian-headless', clusterPort: 4370, intervalMs: 1000, self: '10.0.0.1:4370', logger, resolve }, () => undefined);
    expect(await discovery.refresh()).toEqual(['10.0.0.2:4370', '[fd00::5]:4370']);
    answer = new Error('ENOTFOUND');
    expect(await discovery.refresh()).toEqual(['10.0.0.2:4370', '[fd00::5]:4370']);
    answer = ['10.0.0.3'];
    expect(await discovery.refresh()).toEqual(['10.0.0.3:4370']);
  });

  test('the system resolver answers for localhost (as it would for a headless Service)', async () => {
    expect(await resolveAllAddresses('localhost')).toContain('127.0.0.1');
    expect(formatAddress('::1', 5)).toBe('[::1]:5');
  });
});
