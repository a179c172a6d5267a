/** Reading iptables-save text: the CNI-DN chains (ours and the reference's) and the rows they forward. */
import { describe, expect, it } from 'vitest';
import { dnChains, expandPorts, iptablesRows, parseNat, splitHostPort } from '../../../src/cli/iptables.js';
import { sourceLabel } from '../../../src/cli/rows.js';
import { REFERENCE_SAVE } from './fixtures.js';

describe('iptables-save parsing', () => {
  it('expands multiport lists and splits host:port', () => {
    expect(expandPorts('80,9000:9002')).toEqual([80, 9000, 9001, 9002]);
    expect(splitHostPort('[2001:db8::2]:80')).toEqual({ addr: '2001:db8::2', port: 80 });
    expect(splitHostPort('10.0.0.2:80')).toEqual({ addr: '10.0.0.2', port: 80 });
  });

  it('reads the reference CNI-DN chains in jump order, with owners and localhost marks', () => {
    const nat = parseNat(REFERENCE_SAVE);
    const chains = dnChains(nat);
    expect(chains.map((c) => [c.chain, c.containerID, c.network, c.origin, c.localhost])).toEqual([
      ['CNI-DN-b6c5fb6c593e895d843cb', '2d2b3521aa217', 'podman', 'reference', true],
      ['CNI-DN-4b2fe54a72f0cde89f206', 'container-1', 'mynet', 'reference', false],
    ]);
    expect(chains[1]!.entryPorts.get('tcp')).toEqual([8843, 9000, 9001]);
  });

  it('turns DNAT rules into rows; an unreachable chain (no jump) is not a mapping', () => {
    const rows = iptablesRows(parseNat(REFERENCE_SAVE), 4, 'nft');
    expect(rows.map((r) => `${r.protocol} ${r.hostIP ?? '*'}:${r.hostPort} -> ${r.podIP}:${r.containerPort} ${r.network}/${r.containerID} ${sourceLabel(r.source)}`)).toEqual([
      'tcp *:8843 -> 10.88.0.4:443 podman/2d2b3521aa217 iptables-nft',
      'udp 192.168.1.10:5353 -> 10.88.0.5:53 mynet/container-1 iptables-nft',
      'tcp *:8843 -> 10.88.0.5:443 mynet/container-1 iptables-nft',
    ]);
  });
});

describe('telling our iptables chains from the reference plugin\'s', () => {
  it('a CNI-DN chain written by our iptables backend carries the marker rule; the reference\'s does not', async () => {
    const { addFastDocument, dnatChain } = await import('../../../src/backends/iptables/render.js');
    const { parseConfig } = await import('../../../src/portmap/config.js');
    const { buildPlan, ownerFor } = await import('../../../src/portmap/plan.js');
    const { parseCidr } = await import('../../../src/net/ip.js');
    const config = parseConfig({ cniVersion: '1.0.0', name: 'mynet', backend: 'iptables', runtimeConfig: { portMappings: [{ hostPort: 7070, containerPort: 80 }] } });
    const plan = buildPlan(config, ownerFor(config, 'ours-1', 'eth0'), { 4: parseCidr('10.244.0.7/24') });
    const doc = addFastDocument(plan, plan.families[0]!);
    const chain = dnatChain('mynet', 'ours-1');
    expect(doc).toContain(`-A ${chain} -m comment --comment portmap-ts`);
    // As iptables-save prints both kinds side by side:
    const save = [
      '*nat',
      `-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"mynet\\" id: \\"ours-1\\"" -m multiport --dports 7070 -j ${chain}`,
      '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"mynet\\" id: \\"container-1\\"" -m multiport --dports 7071 -j CNI-DN-4b2fe54a72f0cde89f206',
      `-A ${chain} -m comment --comment portmap-ts`,
      `-A ${chain} -p tcp -m tcp --dport 7070 -j DNAT --to-destination 10.244.0.7:80`,
      '-A CNI-DN-4b2fe54a72f0cde89f206 -p tcp -m tcp --dport 7071 -j DNAT --to-destination 10.244.0.8:80',
      'COMMIT',
    ].join('\n');
    const origins = Object.fromEntries(dnChains(parseNat(save)).map((d) => [d.containerID, d.origin]));
    expect(origins).toEqual({ 'ours-1': 'portmap-ts', 'container-1': 'reference' });
  });
});
