import { linkAgentSettings } from '../../../src/cli/link-agent.js';
import { activeAgentFor, holderMarkerFilter, parseHolderMarker, stickyHolder } from '../../../src/link/region.js';

const agents = ['r-agent', 'r-agent-1', 'r-agent-2'];
const never = (): boolean => false;
const always = (): boolean => true;

describe('stickyHolder (which agent serves a link, sticky across restarts)', () => {
  test('no holder: the rendezvous winner among the live agents takes the link with term 1', () => {
    expect(stickyHolder('l', new Map(), agents, never)).toEqual({ kind: 'take', agent: activeAgentFor('l', agents), term: 1 });
  });

  test('a live holder keeps the link even when another agent wins the hash (no move back)', () => {
    for (const link of ['l1', 'l2', 'l3', 'l4']) {
      const loser = agents.find((a) => a !== activeAgentFor(link, agents)) as string;
      expect(stickyHolder(link, new Map([[loser, 4]]), agents, never)).toEqual({ kind: 'keep', agent: loser, term: 4 });
    }
  });

  test('two live holders (a hand-back race): the higher term wins; equal terms go by the hash among them', () => {
    expect(stickyHolder('l', new Map([['r-agent', 2], ['r-agent-1', 3]]), agents, never)).toMatchObject({ kind: 'keep', agent: 'r-agent-1' });
    expect(stickyHolder('l', new Map([['r-agent', 2], ['r-agent-2', 2]]), agents, never))
      .toMatchObject({ kind: 'keep', agent: activeAgentFor('l', ['r-agent', 'r-agent-2']) });
  });

  test('a holder away within its grace keeps the link (nobody takes over); beyond it the link moves with a higher term', () => {
    const live = agents.filter((a) => a !== 'r-agent');
    expect(stickyHolder('l', new Map([['r-agent', 5]]), live, always)).toEqual({ kind: 'wait', agents: ['r-agent'] });
    expect(stickyHolder('l', new Map([['r-agent', 5]]), live, never)).toEqual({ kind: 'take', agent: activeAgentFor('l', live), term: 6 });
  });

  test('holder markers round-trip; other filters are not markers', () => {
    expect(parseHolderMarker(holderMarkerFilter('eu-west', 12))).toEqual({ remote: 'eu-west', term: 12 });
    expect(parseHolderMarker('$LINK/cluster/msg/eu-west/+')).toBeNull();
    expect(parseHolderMarker('$LINK/cluster/term/eu-west/x')).toBeNull();
  });
});

describe('meridian link-agent --move-grace', () => {
  const required = { links: '/l.yaml', 'cluster-name': 'c', seeds: '10.0.0.1:4370', 'cluster-secret-file': '/s', 'cluster-advertise': '10.0.0.9:4371' };

  test('default two route heartbeats (2/3 of the route TTL); seconds with decimals; must stay below the route TTL', () => {
    expect(linkAgentSettings(required).moveGraceMs).toBe(10_000);
    expect(linkAgentSettings({ ...required, 'route-ttl': '9' }).moveGraceMs).toBe(6000);
    expect(linkAgentSettings({ ...required, 'move-grace': '2.5' }).moveGraceMs).toBe(2500);
    expect(() => linkAgentSettings({ ...required, 'move-grace': '15' })).toThrow(/--move-grace must be .* below --route-ttl \(15\), got '15'/);
    expect(() => linkAgentSettings({ ...required, 'move-grace': 'soon' })).toThrow(/--move-grace/);
  });
});
