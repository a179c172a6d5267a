/**
 * Warm-up for the bundle's code cache (build/build.mjs, dist/portmap on Node): runs the pure path of an
 * ADD and a DEL, child processes and the lock once, so that the functions they use get compiled at build
 * time instead of on every CNI call (about 10 ms of CPU per call; bench/README.md).
 * Nothing here may keep per-call state: its results are thrown away.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SAMPLE_NETNS = '/var/run/netns/snapshot-warm-up';

/** The pure path of an ADD and a DEL: no process, file or lock; nothing it returns is kept. */
export async function warmUpPurePath(): Promise<void> {
  const { parseConfig, logSettingsOf } = await import('../portmap/config.js');
  const { callFields } = await import('../plugin/call-log.js');
  const { formatLine } = await import('../host/log-format.js');
  const { parsePrevResult, convertResult, containerAddresses } = await import('../cni/result.js');
  const { parseEnv } = await import('../cni/env.js');
  const { buildPlan, ownerFor } = await import('../portmap/plan.js');
  const { recordOf } = await import('../portmap/record.js');
  const { fastAdd, fastDel } = await import('../backends/nftables/reconcile.js');
  const { document } = await import('../backends/nftables/json.js');
  const args = parseEnv({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'snapshot-warm-up', CNI_NETNS: SAMPLE_NETNS, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' });
  for (const cniVersion of ['1.0.0', '0.4.0']) {
    const v04 = cniVersion === '0.4.0';
    const config = parseConfig({
      cniVersion,
      name: 'snapshot-warm-up',
      type: 'portmap',
      capabilities: { portMappings: true },
      runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 8053, containerPort: 53, protocol: 'udp', hostIP: '192.0.2.1' }] },
      prevResult: {
        cniVersion,
        interfaces: [{ name: 'cni0' }, { name: 'veth0' }, { name: 'eth0', sandbox: SAMPLE_NETNS }],
        ips: [
          { address: '10.244.0.2/16', gateway: '10.244.0.1', interface: 2, ...(v04 ? { version: '4' } : {}) },
          { address: 'fd00::2/64', interface: 2, ...(v04 ? { version: '6' } : {}) },
        ],
      },
    });
    const prev = parsePrevResult(config.prevResult, config.cniVersion);
    JSON.stringify(convertResult(prev, config.cniVersion), null, 4);
    const plan = buildPlan(config, ownerFor(config, args.containerId, args.ifname), containerAddresses(prev.result, args.ifname));
    document(fastAdd(plan));
    document(fastDel(plan));
    // ADD keeps a record of the plan (plugin/records.ts): its rendering, without the boot id or a file.
    JSON.stringify(recordOf(plan, { backend: 'nftables', netns: { path: SAMPLE_NETNS }, bootId: 'warm-up', now: 0 }));
    // Every call writes its log line (plugin/call-log.ts): formatted here, written nowhere.
    logSettingsOf({ logFile: '/var/log/portmap.log', logLevel: 'info' });
    const fields = callFields({ verb: 'ADD', network: config.name, args: { ...args, args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=warm-up' }, mappings: config.portMappings, report: { backend: 'nftables', path: 'fast' } }, 1);
    for (const format of ['text', 'json'] as const) formatLine(format, { time: new Date(0), level: 'info', pid: 1, fields });
  }
}

/** Child processes (with and without input) and one lock, on a name of its own (the build's own network namespace). */
export async function warmUpProcessAndLock(): Promise<void> {
  const { run } = await import('../host/exec.js');
  await run(process.execPath, ['-e', '0']);
  await run(process.execPath, ['-e', '0'], { input: '{}' });
  const { acquireLock } = await import('../host/lock.js');
  await (await acquireLock('snapshot warm-up', 5_000, `\0cni-portmap-snapshot-${process.pid}`)).release();
  // One record written and removed, as ADD and DEL do (a private directory, gone afterwards).
  const { writeFileAtomic, removeFile } = await import('../host/files.js');
  const { netnsAt } = await import('../host/netns.js');
  const dir = mkdtempSync(join(tmpdir(), 'portmap-warm-up-'));
  try {
    netnsAt('/proc/self/ns/net');
    writeFileAtomic(join(dir, 'sub', 'r.json'), '{}');
    removeFile(join(dir, 'sub', 'r.json'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Both warm-ups. */
export async function warmUp(): Promise<void> {
  await warmUpPurePath();
  await warmUpProcessAndLock();
}
