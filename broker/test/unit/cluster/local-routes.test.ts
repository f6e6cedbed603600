import { LocalRoutes } from '../../../src/cluster/local-routes.js';

function tracker(): { routes: LocalRoutes; changes: string[] } {
  const changes: string[] = [];
  const routes = new LocalRoutes((op, filter, routeId) => changes.push(`${op} ${filter}${routeId ? ` ${routeId}` : ''}`));
  return { routes, changes };
}

describe('LocalRoutes', () => {
  test('the first live subscriber adds the route and the last one deletes it', () => {
    const { routes, changes } = tracker();
    routes.liveSubscribed('a/+');
    routes.liveSubscribed('a/+');
    routes.liveUnsubscribed('a/+');
    expect(changes).toEqual(['add a/+']);
    routes.liveUnsubscribed('a/+');
    expect(changes).toEqual(['add a/+', 'delete a/+']);
    routes.liveUnsubscribed('a/+');
    expect(changes).toHaveLength(2);
  });

  test('a stored persistent subscription keeps the route while its client is offline', () => {
    const { routes, changes } = tracker();
    routes.stored('c1', ['orders/#']);
    routes.liveSubscribed('orders/#');
    routes.liveUnsubscribed('orders/#');
    expect(changes).toEqual(['add orders/#']);
    routes.unstored('c1');
    expect(changes).toEqual(['add orders/#', 'delete orders/#']);
  });

  test('storing the same filter twice for one client counts once', () => {
    const { routes, changes } = tracker();
    routes.stored('c1', ['x', 'x']);
    routes.stored('c1', ['x']);
    routes.stored('c2', ['x']);
    routes.unstored('c1', ['x']);
    expect(changes).toEqual(['add x']);
    routes.unstored('c2');
    expect(changes).toEqual(['add x', 'delete x']);
    expect(routes.size).toBe(0);
  });

  test('shared subscriptions are routes with the group as route id', () => {
    const { routes, changes } = tracker();
    routes.liveSubscribed('$share/workers/jobs/+');
    routes.liveSubscribed('jobs/+');
    expect(changes).toEqual(['add jobs/+ $share/workers', 'add jobs/+']);
    expect([...routes.routes()].sort()).toEqual([['jobs/+', ''], ['jobs/+', '$share/workers']]);
  });

  test('a malformed shared filter is kept as a literal filter instead of throwing', () => {
    const { routes, changes } = tracker();
    routes.liveSubscribed('$share//x');
    expect(changes).toEqual(['add $share//x']);
  });
});
