// Port ranges at scale (issue #14), called from bench.mjs with its node beds and helpers.
//
// One pod publishes a UDP range as one mapping per port (as podman sends `-p 40000-41023:40000-41023/udp`):
//   - 1,024 mappings: ours (both executables) and the reference, ADD and DEL;
//   - 16,384 mappings: ours (nftables, both executables, and the iptables backend); the reference only
//     with BENCH_RANGES_REF_16K=1 (it takes minutes: one iptables process per rule and conntrack call);
//   - 16,384 remapped mappings (hostPort != containerPort, so no range): ours, once, for the record;
//   - new TCP connections per second through a port of a 16,384-port TCP range vs a single mapping.
// Knobs: BENCH_RANGES_ITERATIONS (ours, default 7), BENCH_RANGES_REF_ITERATIONS (default 1),
// BENCH_RANGES_REF_16K, BENCH_RANGES_SINGLES (0 skips the remapped row).
const int = (name, dflt) => (process.env[name] ? Number(process.env[name]) : dflt);

const udpRange = (first, count) => Array.from({ length: count }, (_, i) => ({ hostPort: first + i, containerPort: first + i, protocol: 'udp' }));

/**
 * ctx: { plugins: [{name, bin, bed}], refBed, oursBed, mustCall(bed, bin, verb, cid, config), pluginConfig,
 * podIp, nodeV4, median, fmt, ratio, log, startChild, inNs, connClient(bed, port, seconds, parallel), conn }
 * Prints its section and targets; returns the target results (booleans).
 */
export async function rangesBench(ctx) {
  const { plugins, mustCall, median, fmt, ratio, log } = ctx;
  const iterations = int('BENCH_RANGES_ITERATIONS', 7);
  const refIterations = int('BENCH_RANGES_REF_ITERATIONS', 1);
  const cfg = (bed, mappings, backend) => ctx.pluginConfig({ backend, mappings, podIp: ctx.podIp, netnsPath: bed.podPath });
  const ours = plugins.filter((p) => p.name !== 'reference');
  const reference = plugins.find((p) => p.name === 'reference');

  /** Median ADD and DEL of `runs` fresh attachments with these mappings. */
  async function measure(p, mappings, runs, backend, tag) {
    const add = [];
    const del = [];
    for (let i = 0; i < runs; i++) {
      const cid = `bench-ranges-${tag}-${p.name}-${i}`;
      add.push((await mustCall(p.bed, p.bin, 'ADD', cid, cfg(p.bed, mappings, backend))).ms);
      del.push((await mustCall(p.bed, p.bin, 'DEL', cid, cfg(p.bed, mappings, backend))).ms);
    }
    return { add: median(add), del: median(del), runs };
  }

  const rows = [];
  const r1024 = udpRange(40000, 1024);
  const r16k = udpRange(40000, 16384);
  log('ranges: 1,024 UDP mappings');
  for (const p of ours) rows.push({ what: '1,024 UDP (a range)', plugin: p.name, ...(await measure(p, r1024, iterations, undefined, '1k')) });
  if (reference) {
    log(`ranges: 1,024 UDP mappings, reference (${refIterations} run(s), about 30 s each)`);
    rows.push({ what: '1,024 UDP (a range)', plugin: 'reference', ...(await measure(reference, r1024, refIterations, undefined, '1k')) });
  }
  log('ranges: 16,384 UDP mappings');
  for (const p of ours) rows.push({ what: '16,384 UDP (a range)', plugin: p.name, ...(await measure(p, r16k, iterations, undefined, '16k')) });
  const bundle = ours.find((p) => p.name === 'ours') ?? ours[0];
  rows.push({ what: '16,384 UDP (a range)', plugin: `${bundle.name}, iptables backend`, ...(await measure(bundle, r16k, Math.min(3, iterations), 'iptables', '16k-ipt')) });
  if (reference && process.env.BENCH_RANGES_REF_16K === '1') {
    log('ranges: 16,384 UDP mappings, reference (minutes)');
    rows.push({ what: '16,384 UDP (a range)', plugin: 'reference', ...(await measure(reference, r16k, 1, undefined, '16k')) });
  }
  if (int('BENCH_RANGES_SINGLES', 1) > 0) {
    log('ranges: 16,384 remapped UDP mappings (no range)');
    const remapped = Array.from({ length: 16384 }, (_, i) => ({ hostPort: 40000 + i, containerPort: 1 + i, protocol: 'udp' }));
    rows.push({ what: '16,384 UDP remapped (singles)', plugin: bundle.name, ...(await measure(bundle, remapped, 1, undefined, '16k-singles')) });
  }

  // New connections through a port of a TCP range vs a single mapping (ours, nftables).
  log('ranges: connection rate through a range');
  const bed = bundle.bed;
  await ctx.startChild(['ip', 'netns', 'exec', bed.pod, process.execPath, ctx.connScript, 'server', '9080'], true);
  const tcpRange = Array.from({ length: 16384 }, (_, i) => ({ hostPort: 9000 + i, containerPort: 9000 + i, protocol: 'tcp' }));
  const single = [{ hostPort: 9080, containerPort: 9080, protocol: 'tcp' }];
  const rates = { single: [], range: [] };
  for (let round = 0; round < ctx.connRounds; round++) {
    for (const [kind, mappings] of round % 2 ? [['range', tcpRange], ['single', single]] : [['single', single], ['range', tcpRange]]) {
      await mustCall(bed, bundle.bin, 'ADD', 'bench-ranges-conn', cfg(bed, mappings));
      ctx.inNs(bed.node, ['conntrack', '-F'], { ok: [0, 1] });
      rates[kind].push(ctx.connClient(bed, 9080).rate);
      await mustCall(bed, bundle.bin, 'DEL', 'bench-ranges-conn', cfg(bed, mappings));
    }
  }

  console.log('\n### Port ranges: one pod with many UDP mappings (median; ratio = ours / reference)\n');
  console.log('| mappings | plugin | runs | ADD | DEL | ADD ratio | DEL ratio |');
  console.log('|---|---|---|---|---|---|---|');
  const refOf = (what) => rows.find((r) => r.what === what && r.plugin === 'reference');
  for (const r of rows) {
    const ref = refOf(r.what);
    const isRef = r.plugin === 'reference';
    console.log(`| ${r.what} | ${r.plugin} | ${r.runs} | ${fmt(r.add)} | ${fmt(r.del)} | ${isRef || !ref ? '-' : ratio(r.add, ref.add)} | ${isRef || !ref ? '-' : ratio(r.del, ref.del)} |`);
  }
  if (!refOf('16,384 UDP (a range)')) console.log('\n(reference at 16,384: not run; BENCH_RANGES_REF_16K=1 runs it, issue #14 measured 384 s for an ADD at 4,096)');
  const single1 = median(rates.single);
  const range1 = median(rates.range);
  console.log(`\nNew TCP connections per second to a port of a 16,384-port range: ${Math.round(range1)} conn/s; through a single mapping: ${Math.round(single1)} conn/s (median of ${ctx.connRounds})`);

  console.log('\nport ranges:\n');
  const results = [];
  const target = (label, ok, detail) => {
    results.push(ok);
    console.log(`- ${ok ? 'PASS' : 'FAIL'}  ${label}: ${detail}`);
  };
  for (const p of ours) {
    const r = rows.find((x) => x.what === '16,384 UDP (a range)' && x.plugin === p.name);
    target(`${p.name} ADD of 16,384 UDP mappings < 200 ms`, r.add < 200, fmt(r.add));
    target(`${p.name} DEL of 16,384 UDP mappings < 200 ms`, r.del < 200, fmt(r.del));
    const k = rows.find((x) => x.what === '1,024 UDP (a range)' && x.plugin === p.name);
    const ref = refOf('1,024 UDP (a range)');
    if (ref) target(`${p.name} ADD of 1,024 UDP mappings <= 0.05x reference`, k.add <= 0.05 * ref.add, `${fmt(k.add)} vs ${fmt(ref.add)} = ${ratio(k.add, ref.add)}`);
  }
  target('connection rate through a range within 5% of a single mapping', range1 >= 0.95 * single1, `${Math.round(range1)} vs ${Math.round(single1)} conn/s = ${((range1 / single1 - 1) * 100).toFixed(1)}%`);
  return results;
}
