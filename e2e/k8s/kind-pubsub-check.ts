/**
 * Cross-region check for the kind mesh (e2e/k8s/kind-e2e.sh): a subscriber in one region receives a message
 * published in another, through the host port mappings of kind-config/. Publishes until the subscription's route
 * has crossed the link, then exits 0; exits 1 after the deadline.
 *   node dist/e2e/k8s/kind-pubsub-check.js [--from 1883] [--to 3883] [--timeout 120]
 */
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';

const { values } = parseArgs({
  options: {
    from: { type: 'string', default: '1883' },
    to: { type: 'string', default: '3883' },
    timeout: { type: 'string', default: '120' },
    username: { type: 'string', default: 'acme-demo' },
    password: { type: 'string', default: 'example-acme-password' },
  },
});

const topic = `kind-check/${Date.now()}`;
const options = { username: values.username, password: values.password, reconnectPeriod: 1000, connectTimeout: 5000 };

async function main(): Promise<number> {
  const deadline = Date.now() + Number(values.timeout) * 1000;
  const subscriber = await mqtt.connectAsync(`mqtt://127.0.0.1:${values.to}`, { ...options, clientId: `kind-check-sub-${process.pid}` });
  const publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${values.from}`, { ...options, clientId: `kind-check-pub-${process.pid}` });
  let received = false;
  subscriber.on('message', (t, payload) => {
    if (t === topic) {
      received = true;
      console.log(`received '${payload.toString()}' on ${t} at port ${values.to}`);
    }
  });
  await subscriber.subscribeAsync(topic, { qos: 1 });
  for (let i = 0; !received && Date.now() < deadline; i++) {
    await publisher.publishAsync(topic, `hello ${i} from port ${values.from}`, { qos: 1 });
    await new Promise((r) => setTimeout(r, 2000));
  }
  await Promise.all([subscriber.endAsync(), publisher.endAsync()]);
  if (!received) console.error(`no message on ${topic} crossed from port ${values.from} to port ${values.to} within ${values.timeout} s`);
  return received ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`kind-pubsub-check: ${err.message}`);
    process.exit(1);
  },
);
