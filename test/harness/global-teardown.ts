/** Jest global teardown: stop and remove the shared clusters, whatever happened. */
export default async function globalTeardown(): Promise<void> {
  const clusters = globalThis.__pgferryClusters ?? [];
  await Promise.all(clusters.map((c) => c.destroy()));
}
