/**
 * The in-pod redirection rules of Istio's CNI node agent, as text for `iptables-restore --noflush`. Pure: no
 * I/O; netns-rules.ts runs the text inside the pod's network namespace.
 *
 * Source of truth: istio cni/pkg/iptables/iptables.go (AppendInpodRules) and its golden
 * cni/pkg/iptables/testdata/default.golden. inpodRules({dnsCapture: true})
 * reproduces that golden byte for byte. Without DNS capture (this project's default, see config.ts) the only
 * differences are the ones Istio makes too: the two nat port-53 REDIRECT lines and the whole raw table
 * (CT zone rules) are left out.
 *
 * IPv4 only: Istio mirrors these rules with ip6tables (::1/128 and the v6 probe address) when the pod has IPv6;
 * this project's pods are IPv4 only (IPv6 rules are not implemented yet).
 */

/** istio cni/pkg/config/config.go:30-42. */
export const Inpod = {
  /** ztunnel's SO_MARK on every socket it makes in the pod (ztunnel DEFAULT_INPOD_MARK 1337). */
  mark: 0x539,
  mask: 0xfff,
  /** Connmark for connections ztunnel made to the app; replies get it back and route to lo (table 100). */
  tproxyMark: 0x111,
  tproxyMask: 0xfff,
  restoreMask: 0xffffffff,
  routeTable: 100,
  /** `ip rule` priority of the fwmark rule (istio cni/pkg/iptables/iptables_linux.go). */
  rulePriority: 32764,
  dnsCapturePort: 15053,
  ztunnelInboundPort: 15008,
  ztunnelOutboundPort: 15001,
  ztunnelInboundPlaintextPort: 15006,
  /** Chains in the pod netns. */
  preroutingChain: 'ISTIO_PRERT',
  outputChain: 'ISTIO_OUTPUT',
  /** HOST_PROBE_SNAT_ADDRESS default: kubelet probes are SNATed to it on the host and let through in the pod. */
  defaultProbeSnatAddress: '169.254.7.127',
} as const;

export interface InpodRuleOptions {
  /** Redirect the pod's DNS (UDP/TCP 53) to ztunnel's DNS proxy on 15053 and add the raw CT zone rules. */
  dnsCapture: boolean;
  /** HOST_PROBE_SNAT_ADDRESS, an IPv4 address without prefix (Istio writes it bare, iptables adds /32). */
  probeSnatAddress: string;
}

export type InpodTable = 'mangle' | 'nat' | 'raw';

const hex = (n: number): string => `0x${n.toString(16)}`;
const MARK = `${hex(Inpod.mark)}/${hex(Inpod.mask)}`;
const TPROXY_MARK = `${hex(Inpod.tproxyMark)}/${hex(Inpod.tproxyMask)}`;
const RESTORE = hex(Inpod.restoreMask);
const PRERT = Inpod.preroutingChain;
const OUTPUT = Inpod.outputChain;

/** The rule lines per table in Istio's order (chain declarations first, then jumps, then chain rules). */
export function inpodRuleLines(opts: InpodRuleOptions): Array<[InpodTable, string[]]> {
  const probe = opts.probeSnatAddress;
  const mangle = [
    `-N ${PRERT}`,
    `-N ${OUTPUT}`,
    `-A PREROUTING -j ${PRERT}`,
    `-A OUTPUT -j ${OUTPUT}`,
    // Connections ztunnel made (mark 0x539) get connmark 0x111 as they loop in via lo...
    `-A ${PRERT} -m mark --mark ${MARK} -j CONNMARK --set-xmark ${TPROXY_MARK}`,
    // ...and the app's replies get the mark restored, so `ip rule fwmark 0x111` routes them back to ztunnel.
    `-A ${OUTPUT} -m connmark --mark ${TPROXY_MARK} -j CONNMARK --restore-mark --nfmask ${RESTORE} --ctmask ${RESTORE}`,
  ];
  const nat = [
    `-N ${PRERT}`,
    `-N ${OUTPUT}`,
    `-A OUTPUT -j ${OUTPUT}`,
    `-A PREROUTING -j ${PRERT}`,
    // Kubelet probes, SNATed on the host to the probe address, reach the app directly.
    `-A ${PRERT} -s ${probe} -p tcp -m tcp -j ACCEPT`,
    `-A ${OUTPUT} -d ${probe} -p tcp -m tcp -j ACCEPT`,
    // Inbound: HBONE on 15008 goes to ztunnel's in-pod listener as is; other TCP to the plaintext port.
    `-A ${PRERT} ! -d 127.0.0.1/32 -p tcp ! --dport ${Inpod.ztunnelInboundPort} -m mark ! --mark ${MARK} -j REDIRECT --to-ports ${Inpod.ztunnelInboundPlaintextPort}`,
    ...(opts.dnsCapture
      ? [
          `-A ${OUTPUT} ! -o lo -p udp -m mark ! --mark ${MARK} -m udp --dport 53 -j REDIRECT --to-port ${Inpod.dnsCapturePort}`,
          `-A ${OUTPUT} ! -d 127.0.0.1/32 -p tcp --dport 53 -m mark ! --mark ${MARK} -j REDIRECT --to-ports ${Inpod.dnsCapturePort}`,
        ]
      : []),
    `-A ${OUTPUT} -p tcp -m mark --mark ${TPROXY_MARK} -j ACCEPT`,
    `-A ${OUTPUT} ! -d 127.0.0.1/32 -o lo -j ACCEPT`,
    // Outbound: everything the app sends (not ztunnel's own, marked sockets) goes to ztunnel's 15001.
    `-A ${OUTPUT} ! -d 127.0.0.1/32 -p tcp -m mark ! --mark ${MARK} -j REDIRECT --to-ports ${Inpod.ztunnelOutboundPort}`,
  ];
  const tables: Array<[InpodTable, string[]]> = [
    ['mangle', mangle],
    ['nat', nat],
  ];
  if (opts.dnsCapture) {
    // Separate conntrack zone for DNS so ztunnel's upstream queries don't collide with the app's redirected ones.
    tables.push([
      'raw',
      [
        `-N ${OUTPUT}`,
        `-N ${PRERT}`,
        `-A PREROUTING -j ${PRERT}`,
        `-A OUTPUT -j ${OUTPUT}`,
        `-A ${OUTPUT} -p udp -m mark --mark ${MARK} -m udp --dport 53 -j CT --zone 1`,
        `-A ${PRERT} -p udp -m mark ! --mark ${MARK} -m udp --sport 53 -j CT --zone 1`,
      ],
    ]);
  }
  return tables;
}

/** The `iptables-restore --noflush` input for a pod without leftovers (Istio's default.golden with DNS capture). */
export function inpodRules(opts: InpodRuleOptions): string {
  return `${inpodRuleLines(opts)
    .map(([table, lines]) => [`* ${table}`, ...lines, 'COMMIT'].join('\n'))
    .join('\n')}\n`;
}

/** What `iptables-save` shows in the pod for one table: chain names and the `-A` rule lines. */
export interface SavedTable {
  chains: Set<string>;
  rules: string[];
}

/** Parses `iptables-save` output (`*table`, `:CHAIN POLICY [p:b]`, `-A ...`, `COMMIT`, `#` comments). */
export function parseIptablesSave(text: string): Map<string, SavedTable> {
  const tables = new Map<string, SavedTable>();
  let current: SavedTable | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      const name = line.slice(1).trim();
      current = tables.get(name) ?? { chains: new Set(), rules: [] };
      tables.set(name, current);
    } else if (line === 'COMMIT') {
      current = undefined;
    } else if (current !== undefined && line.startsWith(':')) {
      const name = line.slice(1).split(/\s+/)[0];
      if (name !== undefined && name !== '') current.chains.add(name);
    } else if (current !== undefined && line.startsWith('-A ')) {
      current.rules.push(line);
    }
  }
  return tables;
}

const OUR_CHAINS = [PRERT, OUTPUT] as const;

/** True when the rule's target (`-j X`) is one of our chains. */
function jumpsToOurChain(rule: string): boolean {
  const words = rule.split(/\s+/);
  for (let i = 0; i < words.length - 1; i++) {
    if ((words[i] === '-j' || words[i] === '--jump') && (OUR_CHAINS as readonly string[]).includes(words[i + 1] ?? '')) {
      return true;
    }
  }
  return false;
}

/**
 * The teardown lines for one table as it is now: delete every jump into our chains from other chains (each
 * occurrence, so duplicates left by anyone go too), then flush and delete our chains. Only what exists is
 * named, because iptables-restore fails the whole table on a `-D`/`-X` of something missing.
 */
export function teardownLines(saved: SavedTable | undefined): string[] {
  if (saved === undefined) return [];
  const ours = OUR_CHAINS.filter((c) => saved.chains.has(c));
  const lines: string[] = [];
  for (const rule of saved.rules) {
    const chain = rule.split(/\s+/)[1] ?? '';
    if ((OUR_CHAINS as readonly string[]).includes(chain)) continue; // goes with the flush
    if (jumpsToOurChain(rule)) lines.push(`-D${rule.slice(2)}`);
  }
  for (const c of ours) lines.push(`-F ${c}`);
  for (const c of ours) lines.push(`-X ${c}`);
  return lines;
}

const ALL_TABLES: readonly InpodTable[] = ['mangle', 'nat', 'raw'];

/**
 * Input that removes everything inpodRules installs, given the pod's current `iptables-save` (parsed). Empty
 * string when nothing of ours is there.
 */
export function inpodTeardown(saved: Map<string, SavedTable>): string {
  const blocks: string[] = [];
  for (const table of ALL_TABLES) {
    const lines = teardownLines(saved.get(table));
    if (lines.length > 0) blocks.push([`* ${table}`, ...lines, 'COMMIT'].join('\n'));
  }
  return blocks.length === 0 ? '' : `${blocks.join('\n')}\n`;
}

/**
 * Reconcile: input that leaves exactly the inpodRules set, whatever of ours is there now. Each table's removal
 * and re-creation sit in one `*table ... COMMIT` block, which iptables-restore commits atomically, so a pod
 * that already has the rules never has them twice nor is briefly without them. With nothing present it is
 * exactly inpodRules(opts).
 */
export function inpodReconcile(saved: Map<string, SavedTable>, opts: InpodRuleOptions): string {
  const wanted = new Map(inpodRuleLines(opts));
  const blocks: string[] = [];
  for (const table of ALL_TABLES) {
    const lines = [...teardownLines(saved.get(table)), ...(wanted.get(table) ?? [])];
    if (lines.length > 0) blocks.push([`* ${table}`, ...lines, 'COMMIT'].join('\n'));
  }
  return `${blocks.join('\n')}\n`;
}

/** True when any of our chains exists in any table. */
export function hasInpodChains(saved: Map<string, SavedTable>): boolean {
  return ALL_TABLES.some((t) => OUR_CHAINS.some((c) => saved.get(t)?.chains.has(c) === true));
}

/** `ip rule` selector of the in-pod policy route (Istio: fwmark 0x111/0xfff pref 32764 lookup 100). */
export function ipRuleArgs(): string[] {
  return ['fwmark', TPROXY_MARK, 'pref', String(Inpod.rulePriority), 'lookup', String(Inpod.routeTable)];
}

/** `ip route` spec of the table-100 route that delivers marked replies locally (Istio: local 0.0.0.0/0 dev lo). */
export function ipRouteArgs(): string[] {
  return ['local', '0.0.0.0/0', 'dev', 'lo', 'table', String(Inpod.routeTable)];
}
