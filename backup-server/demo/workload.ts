/**
 * The demo's monitored application: a small monitoring schema (hosts, samples, alerts with identity and
 * serial keys) and a steady write load of small transactions (inserts, updates, deletes).
 */
import { Client } from 'pg';

export const DEMO_SCHEMA = `
CREATE TABLE hosts (
  id serial PRIMARY KEY,
  name text NOT NULL UNIQUE,
  status text NOT NULL DEFAULT 'up',
  checked_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE samples (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  host_id int NOT NULL REFERENCES hosts(id),
  metric text NOT NULL,
  value double precision NOT NULL,
  taken_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE alerts (
  id bigserial PRIMARY KEY,
  host_id int NOT NULL REFERENCES hosts(id),
  message text NOT NULL,
  details jsonb,
  raised_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO hosts (name) SELECT 'host-' || lpad(i::text, 3, '0') FROM generate_series(1, 200) i;
INSERT INTO samples (host_id, metric, value)
  SELECT 1 + (i % 200), (ARRAY['cpu', 'mem', 'disk', 'rtt'])[1 + i % 4], random() * 100
    FROM generate_series(1, 20000) i;
INSERT INTO alerts (host_id, message, details)
  SELECT 1 + (i % 200), 'threshold exceeded', jsonb_build_object('level', i % 3)
    FROM generate_series(1, 500) i;
`;

export async function createDemoSchema(url: string): Promise<void> {
  const c = new Client({ connectionString: url });
  c.on('error', () => undefined); // a lost connection rejects the query; never crash the demo
  await c.connect();
  try {
    await c.query(DEMO_SCHEMA);
  } finally {
    await c.end();
  }
}

/** Small transactions as fast as one connection with a short pause allows, until stopped. */
export class WriteLoad {
  transactions = 0;
  private stopping = false;
  private running: Promise<void> | null = null;
  private client: Client | null = null;

  constructor(
    private readonly url: string,
    private readonly pauseMs = 10,
  ) {}

  async start(): Promise<void> {
    const c = new Client({ connectionString: this.url, application_name: 'pgferry-demo-load' });
    c.on('error', () => undefined); // a lost connection rejects the query; never crash the demo
    await c.connect();
    this.client = c;
    this.running = this.loop(c);
  }

  private async loop(c: Client): Promise<void> {
    while (!this.stopping) {
      const n = this.transactions;
      await c.query('BEGIN');
      await c.query(
        `INSERT INTO samples (host_id, metric, value)
           SELECT 1 + (random() * 199)::int, 'cpu', random() * 100 FROM generate_series(1, 5)`,
      );
      if (n % 5 === 0)
        await c.query(
          "UPDATE hosts SET status = CASE WHEN status = 'up' THEN 'down' ELSE 'up' END, checked_at = now() WHERE id = $1",
          [1 + (n % 200)],
        );
      if (n % 7 === 0)
        await c.query("INSERT INTO alerts (host_id, message, details) VALUES ($1, 'host down', $2)", [
          1 + (n % 200),
          JSON.stringify({ seen: n }),
        ]);
      if (n % 11 === 0) await c.query('DELETE FROM alerts WHERE id = (SELECT min(id) FROM alerts)');
      await c.query('COMMIT');
      this.transactions++;
      await new Promise((r) => setTimeout(r, this.pauseMs));
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running?.catch(() => undefined);
    this.running = null;
    await this.client?.end().catch(() => undefined);
    this.client = null;
  }
}
