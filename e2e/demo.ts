/**
 * The one-command demo (`npm start`, `make demo`): three regions on this machine, each a regional cluster rendered
 * by the operator from e2e/manifests, linked through latency proxies; prints how to connect, then a live sample
 * (an access event published in US-East every second, printed by a subscriber in EMEA with its latency).
 * Ctrl-C (SIGINT) or SIGTERM stops every process it started.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { DEFAULT_DELAYS, Mesh, PortInUseError, REGION_NAMES, stopAllMeshes, type Credentials, type RegionName } from './harness/mesh.js';

const USAGE = `Usage: npm start [-- flags]      (or: node dist/e2e/demo.js [flags])

Starts three Meridian regions on 127.0.0.1 (us-east, us-west, emea; each 2 cores + 1 replicant + a link agent),
linked as a full mesh through latency proxies, and shows a live sample. Ctrl-C stops everything.

Flags:
  --ports <e,w,m>        client MQTT ports of us-east,us-west,emea (default 1883,2883,3883)  [MERIDIAN_DEMO_PORTS]
  --admin-ports <e,w,m>  admin HTTP ports of us-east,us-west,emea (default 8081,8082,8083)  [MERIDIAN_DEMO_ADMIN_PORTS]
  --no-sample            start the regions only, without the live publisher/subscriber
  -h, --help             this help
`;

interface DemoOptions {
  ports: number[];
  adminPorts: number[];
  sample: boolean;
}

class UsageError extends Error {}

function parsePorts(text: string, what: string): number[] {
  const ports = text.split(',').map((p) => p.trim());
  const numbers = ports.map(Number);
  if (ports.length !== 3 || numbers.some((n) => !Number.isInteger(n) || n < 1 || n > 65535)) {
    throw new UsageError(`${what} must be three ports 1-65535 (us-east,us-west,emea), got '${text}'`);
  }
  return numbers;
}

function parseArgs(argv: string[], env: NodeJS.ProcessEnv): DemoOptions | 'help' {
  let ports = env.MERIDIAN_DEMO_PORTS ?? '1883,2883,3883';
  let adminPorts = env.MERIDIAN_DEMO_ADMIN_PORTS ?? '8081,8082,8083';
  let sample = true;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (flag === '-h' || flag === '--help') return 'help';
    else if (flag === '--ports') ports = value();
    else if (flag === '--admin-ports') adminPorts = value();
    else if (flag === '--no-sample') sample = false;
    else throw new UsageError(`unknown flag '${arg}'`);
  }
  const options = { ports: parsePorts(ports, '--ports'), adminPorts: parsePorts(adminPorts, '--admin-ports'), sample };
  const all = [...options.ports, ...options.adminPorts];
  if (new Set(all).size !== all.length) throw new UsageError(`the six ports must differ, got --ports ${ports} --admin-ports ${adminPorts}`);
  return options;
}

const byRegion = (values: number[]): Record<RegionName, number> =>
  Object.fromEntries(REGION_NAMES.map((r, i) => [r, values[i]!])) as Record<RegionName, number>;

function banner(mesh: Mesh): string {
  const acme = mesh.credentials('acme');
  const globex = mesh.credentials('globex');
  const admin = mesh.credentials('admin');
  const east = mesh.region('us-east');
  const emea = mesh.region('emea');
  const rows = REGION_NAMES.map((name) => {
    const r = mesh.region(name);
    return `  ${name.padEnd(9)}127.0.0.1:${String(r.clientPort).padEnd(7)}${r.adminUrl.padEnd(24)}${r.agentAdminUrls[0]}/api/v1/links`;
  });
  const delays = Object.entries(DEFAULT_DELAYS).map(([pair, d]) => `${pair.replace('|', '↔')} ${d.delayMs} ms`).join(', ');
  return [
    '',
    'Meridian demo: three regions on 127.0.0.1, each 2 cores + 1 replicant + a link agent, configured by the',
    `operator's renderer from e2e/manifests/*.yaml; links go through latency proxies (one-way ${delays}).`,
    '',
    '  region   MQTT             admin (core-0)          links',
    ...rows,
    '',
    'Users (same in every region):',
    `  ${acme.username} / ${acme.password}       tenant acme   (its topics are under 'acme/' inside the broker)`,
    `  ${globex.username} / ${globex.password}   tenant globex (cannot see acme's topics)`,
    `  ${admin.username} / ${admin.password}               superuser     (sees every tenant's topics with their prefix)`,
    '',
    'Try it in another terminal (mosquitto-clients):',
    `  mosquitto_sub -h 127.0.0.1 -p ${emea.clientPort} -u ${acme.username} -P ${acme.password} -q 2 -v -t '+/access/#'`,
    `  mosquitto_pub -h 127.0.0.1 -p ${east.clientPort} -u ${acme.username} -P ${acme.password} -q 2 -t 'boston-hq/access/door-7/denied' -m 'badge 4711'`,
    `  mosquitto_sub -h 127.0.0.1 -p ${emea.clientPort} -u ${admin.username} -P ${admin.password} -v -t 'acme/#'`,
    `  curl -s ${east.adminUrl}/api/v1/cluster ; curl -s ${east.agentAdminUrls[0]}/api/v1/links`,
    '',
    'Ctrl-C stops everything.',
    '',
  ].join('\n');
}

function connect(port: number, creds: Credentials, clientId: string): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { ...creds, clientId, reconnectPeriod: 1000, connectTimeout: 5000 });
}

interface AccessEvent { site: string; door: string; result: string; badge: number; seq: number; sentAt: number }

/** The sample's own events; anything else (a message published by hand) gives undefined. */
function parseEvent(payload: Buffer): AccessEvent | undefined {
  try {
    const value = JSON.parse(payload.toString()) as Partial<AccessEvent>;
    return typeof value.sentAt === 'number' && typeof value.seq === 'number' ? (value as AccessEvent) : undefined;
  } catch {
    return undefined;
  }
}

/** A door controller in US-East publishing acme access events (QoS 2), an officer's dashboard in EMEA printing them. */
async function startSample(mesh: Mesh, print: (line: string) => void): Promise<() => Promise<void>> {
  const creds = mesh.credentials('acme');
  const dashboard = await connect(mesh.region('emea').clientPort, creds, 'demo-emea-dashboard');
  dashboard.on('message', (topic, payload) => {
    const event = parseEvent(payload);
    if (event) print(`emea    ← acme/${topic}  badge ${event.badge}  seq ${event.seq}  latency ${Date.now() - event.sentAt} ms`);
    else print(`emea    ← acme/${topic}  '${payload.toString().slice(0, 80)}'  (published by someone else)`);
  });
  await dashboard.subscribeAsync('+/access/#', { qos: 2 });
  const controller = await connect(mesh.region('us-east').clientPort, creds, 'demo-us-east-doors');
  const sites = ['boston-hq', 'nyc-lab'];
  let seq = 0;
  const publishOne = (): void => {
    seq++;
    const event: AccessEvent = {
      site: sites[seq % sites.length]!, door: `door-${1 + (seq % 5)}`, result: seq % 4 === 0 ? 'denied' : 'granted', badge: 4000 + ((seq * 37) % 1000), seq, sentAt: Date.now(),
    };
    const topic = `${event.site}/access/${event.door}/${event.result}`;
    print(`us-east → acme/${topic}  badge ${event.badge}  seq ${seq}  (QoS 2)`);
    controller.publish(topic, JSON.stringify(event), { qos: 2 }, (err) => { if (err) print(`us-east publish failed: ${err.message}`); });
  };
  // The dashboard's subscription has to reach US-East over the link before the first event.
  const timer = setInterval(publishOne, 1000);
  return async () => {
    clearInterval(timer);
    await Promise.allSettled([controller.endAsync(true), dashboard.endAsync(true)]);
  };
}

async function main(): Promise<number> {
  let options: DemoOptions | 'help';
  try {
    options = parseArgs(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`meridian demo: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const print = (line: string): void => { process.stdout.write(`${line}\n`); };
  let stopSample: (() => Promise<void>) | undefined;
  let exiting = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (exiting) return;
    exiting = true;
    print(`\n${signal}: stopping every region ...`);
    void (async () => {
      await stopSample?.();
      await stopAllMeshes();
      print('stopped; no process left.');
      process.exit(0);
    })();
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  process.on('uncaughtException', (err) => {
    process.stderr.write(`meridian demo: ${err.stack ?? err.message}\nstopping every region ...\n`);
    void stopAllMeshes().then(() => process.exit(1));
  });

  print('meridian demo: starting three regions (us-east, us-west, emea) ...');
  let mesh: Mesh;
  try {
    // The data is throwaway: a node still up 6 s after SIGTERM (its drain is 5 s) is killed.
    mesh = await Mesh.start({
      clientPorts: byRegion(options.ports), adminPorts: byRegion(options.adminPorts), handleSignals: false, stopGraceMs: 6000, log: (l) => print(`  ${l}`),
    });
  } catch (err) {
    if (exiting) return new Promise<number>(() => undefined); // shutdown() exits
    if (err instanceof PortInUseError) {
      process.stderr.write(`meridian demo: ${err.message}.\nStop what uses it, or choose other ports, e.g.\n` +
        '  npm start -- --ports 11883,12883,13883 --admin-ports 18081,18082,18083\n' +
        '  MERIDIAN_DEMO_PORTS=11883,12883,13883 MERIDIAN_DEMO_ADMIN_PORTS=18081,18082,18083 make demo\n');
      return 2;
    }
    process.stderr.write(`meridian demo: the regions did not start: ${(err as Error).message}\n`);
    return 1;
  }
  print(banner(mesh));
  if (options.sample && !exiting) {
    print('Live sample: a door controller in US-East publishes an acme access event every second; a dashboard in EMEA prints it.');
    stopSample = await startSample(mesh, print);
  }
  return new Promise<number>(() => undefined); // runs until a signal
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`meridian demo: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  void stopAllMeshes().then(() => process.exit(1));
});
