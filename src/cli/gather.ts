/**
 * The thin gatherer: everything `list` and `doctor` read from the node (the current network namespace),
 * by running nft, iptables-*-save, ss, ip, ipset and reading /proc/sys and the CNI config directory.
 * Missing tools or unreadable state are recorded, never fatal. The reasoning lives in pure modules.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { onPath, run } from '../host/exec.js';
import { type Facts, type LocalnetFact, TOOLS, type Tool, allRows } from './facts.js';
import { type Flavour, parseNat } from './iptables.js';
import { parseIpsetSave } from './ipset.js';
import { parseRuleset } from './nft.js';
import { parseSs } from './ss.js';

const readText = async (path: string): Promise<string | undefined> => {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
};

const lines = (text: string | undefined): string[] => (text ?? '').split('\n').map((l) => l.trim()).filter(Boolean);

async function tryRun(facts: Facts, cmd: string, args: string[]): Promise<string | undefined> {
  try {
    return (await run(cmd, args, { timeoutMs: 20_000 })).stdout;
  } catch (err) {
    facts.errors.push((err as Error).message.split('\n')[0]!);
    return undefined;
  }
}

/** Reads the hostPort state (for `list`): nft ruleset and the iptables nat tables that exist. */
export async function gatherRules(facts: Facts): Promise<void> {
  if (facts.tools.nft) {
    const json = await tryRun(facts, 'nft', ['-j', 'list', 'ruleset']);
    if (json !== undefined) {
      try {
        facts.ruleset = parseRuleset(json);
      } catch (err) {
        facts.errors.push(`could not read nft -j list ruleset: ${(err as Error).message}`);
      }
    }
  }
  const jobs: Array<Promise<void>> = [];
  for (const family of [4, 6] as const) {
    const ip = family === 4 ? 'ip' : 'ip6';
    // Only read tables that exist: reading one would create it (and register NAT hooks) in this namespace.
    const legacyTables = lines(await readText(`/proc/net/${ip}_tables_names`));
    const nftTable = facts.ruleset ? facts.ruleset.tables.includes(`${ip} nat`) : true;
    const flavours: Array<[Flavour, boolean]> = [
      ['legacy', legacyTables.includes('nat')],
      ['nft', nftTable],
    ];
    for (const [flavour, present] of flavours) {
      const cmd = `${ip}tables-${flavour}-save`;
      if (!present || !onPath(cmd)) continue;
      jobs.push(
        tryRun(facts, cmd, ['-t', 'nat']).then((text) => {
          if (text !== undefined) facts.iptables.push({ flavour, family, nat: parseNat(text) });
        }),
      );
    }
  }
  await Promise.all(jobs);
  facts.iptables.sort((a, b) => a.family - b.family || a.flavour.localeCompare(b.flavour));
}

export function emptyFacts(): Facts {
  const tools = Object.fromEntries(TOOLS.map((t) => [t, onPath(t)])) as Record<Tool, boolean>;
  return { tools, iptables: [], ipvsAddresses: [], ipsetServices: [], routeLocalnet: [], errors: [] };
}

/** Everything doctor needs. */
export async function gatherAll(cniConfDir: string): Promise<Facts> {
  const facts = emptyFacts();
  await gatherRules(facts);
  const rows = allRows(facts);
  const jobs: Array<Promise<unknown>> = [];

  if (facts.tools.ip) {
    jobs.push(
      run('ip', ['-j', 'addr', 'show', 'dev', 'kube-ipvs0'], { timeoutMs: 10_000 }).then(
        (r) => {
          const links = JSON.parse(r.stdout) as Array<{ addr_info?: Array<{ local?: string }> }>;
          facts.ipvsAddresses = links.flatMap((l) => (l.addr_info ?? []).map((a) => a.local ?? '')).filter(Boolean);
        },
        () => undefined,
      ),
    );
  }
  if (onPath('ipset')) {
    for (const set of ['KUBE-CLUSTER-IP', 'KUBE-NODE-PORT-TCP', 'KUBE-NODE-PORT-UDP', 'KUBE-NODE-PORT-SCTP']) {
      jobs.push(
        run('ipset', ['list', set, '-o', 'save'], { timeoutMs: 10_000 }).then(
          (r) => facts.ipsetServices.push(...parseIpsetSave(r.stdout)),
          () => undefined,
        ),
      );
    }
  }
  if (facts.tools.ss) {
    jobs.push(tryRun(facts, 'ss', ['-Hltunp']).then((t) => t !== undefined && (facts.listeners = parseSs(t))));
  }
  jobs.push(readText('/proc/sys/net/ipv4/ip_forward').then((v) => v !== undefined && (facts.ipForward = v)));
  jobs.push(readText('/proc/sys/net/ipv6/conf/all/forwarding').then((v) => v !== undefined && (facts.ip6Forward = v)));

  const localhostPods = [...new Set(rows.filter((r) => r.family === 4 && r.localhost && (!r.hostIP || r.hostIP.startsWith('127.'))).map((r) => r.podIP))];
  for (const podIP of localhostPods) {
    jobs.push(
      (async () => {
        const fact: LocalnetFact = { podIP };
        try {
          const r = await run('ip', ['-j', 'route', 'get', podIP], { timeoutMs: 10_000 });
          const dev = (JSON.parse(r.stdout) as Array<{ dev?: string }>)[0]?.dev;
          if (dev) {
            fact.dev = dev;
            const v = await readText(`/proc/sys/net/ipv4/conf/${dev}/route_localnet`);
            if (v !== undefined) fact.value = v;
          }
        } catch {
          // no route: reported as unknown device
        }
        facts.routeLocalnet.push(fact);
      })(),
    );
  }

  facts.cniConfDir = cniConfDir;
  jobs.push(
    (async () => {
      try {
        const names = (await readdir(cniConfDir)).filter((n) => /\.(conflist|conf|json)$/.test(n)).sort();
        facts.confFiles = await Promise.all(
          names.map(async (n) => {
            const file = join(cniConfDir, n);
            try {
              return { file, text: await readFile(file, 'utf8') };
            } catch (err) {
              return { file, error: (err as Error).message };
            }
          }),
        );
      } catch (err) {
        facts.confDirError = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (err as Error).message;
      }
    })(),
  );
  await Promise.all(jobs);
  return facts;
}
