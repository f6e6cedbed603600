import { embeddedKeeper, embeddedMarkerFilter, parseEmbeddedMarker, parseHolderMarker } from '../../../src/link/region.js';

describe('embeddedKeeper (one embedded agent per link and region)', () => {
  test('alone in the region: the node takes the link with a term above every term it knew', () => {
    expect(embeddedKeeper('a-core', { known: 0 }, new Map(), [])).toEqual({ kind: 'take', term: 1 });
    expect(embeddedKeeper('a-core', { known: 4 }, new Map(), [])).toEqual({ kind: 'take', term: 5 });
  });

  test('a node that does not hold the link yields to any embedded holder, whatever the ids and terms (started later: never dials)', () => {
    expect(embeddedKeeper('a-aaa', { known: 0 }, new Map([['a-zzz', 1]]), [])).toEqual({ kind: 'yield', to: 'a-zzz', by: 'embedded' });
    expect(embeddedKeeper('a-aaa', { known: 9 }, new Map([['a-zzz', 1]]), [])).toEqual({ kind: 'yield', to: 'a-zzz', by: 'embedded' });
  });

  test('a holder alone keeps the link with its term', () => {
    expect(embeddedKeeper('a-core', { holding: 3, known: 3 }, new Map(), [])).toEqual({ kind: 'keep', term: 3 });
  });

  test('two holders (started together, or one back after the other took over): the higher term keeps it', () => {
    // The node back from an absence beyond the route TTL holds an older term: it yields to the one that took over.
    expect(embeddedKeeper('a-aaa', { holding: 1, known: 1 }, new Map([['a-zzz', 2]]), [])).toEqual({ kind: 'yield', to: 'a-zzz', by: 'embedded' });
    expect(embeddedKeeper('a-zzz', { holding: 2, known: 2 }, new Map([['a-aaa', 1]]), [])).toEqual({ kind: 'keep', term: 2 });
  });

  test('two holders with equal terms: the smallest node id keeps it, and both sides agree', () => {
    expect(embeddedKeeper('a-core', { holding: 1, known: 1 }, new Map([['a-replicant', 1]]), [])).toEqual({ kind: 'keep', term: 1 });
    expect(embeddedKeeper('a-replicant', { holding: 1, known: 1 }, new Map([['a-core', 1]]), [])).toEqual({ kind: 'yield', to: 'a-core', by: 'embedded' });
  });

  test('any sidecar holder wins over every embedded agent, the holding one included (the first sidecar id is named)', () => {
    expect(embeddedKeeper('a-core', { holding: 7, known: 7 }, new Map(), ['a-agent-1', 'a-agent'])).toEqual({ kind: 'yield', to: 'a-agent', by: 'sidecar' });
    expect(embeddedKeeper('a-core', { known: 0 }, new Map(), ['a-agent'])).toEqual({ kind: 'yield', to: 'a-agent', by: 'sidecar' });
  });

  test('its own entry in the maps is ignored (the table echoes this node\'s marker)', () => {
    expect(embeddedKeeper('a-core', { holding: 1, known: 1 }, new Map([['a-core', 1]]), ['a-core'])).toEqual({ kind: 'keep', term: 1 });
  });

  test('the marker route: round trip, and not mistaken for a sidecar holder marker', () => {
    expect(embeddedMarkerFilter('eu-west', 12)).toBe('$LINK/cluster/embedded/eu-west/12');
    expect(parseEmbeddedMarker('$LINK/cluster/embedded/eu-west/12')).toEqual({ remote: 'eu-west', term: 12 });
    expect(parseEmbeddedMarker('$LINK/cluster/term/eu-west/12')).toBeNull();
    expect(parseHolderMarker(embeddedMarkerFilter('eu-west', 12))).toBeNull();
    expect(parseEmbeddedMarker('$LINK/cluster/embedded/eu-west/x')).toBeNull();
  });
});
