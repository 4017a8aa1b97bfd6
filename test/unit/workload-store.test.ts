/** WorkloadStore: indexes kept up to date by upserts, removals and reloads; lookups; change events. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { WorkloadStore, type StoreChange } from '../../ztunnel/state/store.js';
import { policy, service, workload } from '../../testbed/fixtures/mesh-state.js';

const uids = (ws: Iterable<{ uid: string }>): string[] => [...ws].map((w) => w.uid);
const keys = (ps: Iterable<{ namespace: string; name: string }>): string[] => [...ps].map((p) => `${p.namespace}/${p.name}`);

function recording(store: WorkloadStore): StoreChange[] {
  const changes: StoreChange[] = [];
  store.onChange((c) => changes.push(c));
  return changes;
}

describe('WorkloadStore: workloads', () => {
  it('finds a workload by uid and by each of its IPs on its network', () => {
    const s = new WorkloadStore();
    const a = workload({ name: 'a', workloadIps: ['10.0.0.1', 'fd00::1'], network: 'n1' });
    s.apply({ workloads: [a] });
    assert.equal(s.workload(a.uid), a);
    assert.equal(s.workloadByIp('n1', '10.0.0.1'), a);
    assert.equal(s.workloadByIp('n1', 'fd00:0:0:0::1'), a, 'any spelling of the IPv6 address');
    assert.equal(s.workloadByIp('n1', '::ffff:10.0.0.1'), a, 'an IPv4-mapped address as the IPv4 one');
    assert.equal(s.workloadByIp('', '10.0.0.1'), undefined, 'another network is another address space');
    assert.equal(s.workloadByIp('n1', 'not-an-ip'), undefined);
  });

  it('drops the old IPs when an upsert replaces a workload', () => {
    const s = new WorkloadStore();
    s.apply({ workloads: [workload({ name: 'a', workloadIps: ['10.0.0.1'], services: { 'default/old': { 80: 8080 } } })] });
    const moved = workload({ name: 'a', workloadIps: ['10.0.0.2'], services: { 'default/new': { 80: 8080 } } });
    s.apply({ workloads: [moved] });
    assert.equal(s.workloadByIp('', '10.0.0.1'), undefined);
    assert.equal(s.workloadByIp('', '10.0.0.2'), moved);
    assert.deepEqual(s.endpoints('default/old'), []);
    assert.deepEqual(uids(s.endpoints('default/new')), [moved.uid]);
    assert.equal(s.counts.workloads, 1);
  });

  it('removes a workload from every index', () => {
    const s = new WorkloadStore();
    const a = workload({ name: 'a', workloadIps: ['10.0.0.1'], hostname: 'a.example', services: { 'default/web': { 80: 8080 } } });
    s.apply({ workloads: [a] });
    s.apply({ removedWorkloads: [a.uid, 'never-existed'] });
    assert.equal(s.workload(a.uid), undefined);
    assert.equal(s.workloadByIp('', '10.0.0.1'), undefined);
    assert.equal(s.workloadByHostname('default', 'a.example'), undefined);
    assert.deepEqual(s.workloadsByName('default', 'a'), []);
    assert.deepEqual(s.endpoints('default/web'), []);
  });

  it('keeps the other workload when two share an address and one goes away', () => {
    const s = new WorkloadStore();
    const pod = workload({ name: 'pod', workloadIps: ['10.0.0.9'] });
    const entry = workload({ name: 'vm', uid: 'Kubernetes/networking.istio.io/WorkloadEntry/default/vm', workloadIps: ['10.0.0.9'] });
    s.apply({ workloads: [pod, entry] });
    assert.equal(s.workloadByIp('', '10.0.0.9'), pod, 'a Pod wins an address conflict');
    s.apply({ removedWorkloads: [pod.uid] });
    assert.equal(s.workloadByIp('', '10.0.0.9'), entry);
  });

  it('does not index host-network workloads by their (node) IP', () => {
    const s = new WorkloadStore();
    s.apply({ workloads: [workload({ name: 'h', workloadIps: ['192.168.1.10'], networkMode: 'HostNetwork' })] });
    assert.equal(s.workloadByIp('', '192.168.1.10'), undefined);
  });

  it('finds workloads by hostname and by name', () => {
    const s = new WorkloadStore();
    const a = workload({ name: 'a', hostname: 'A.Example' });
    s.apply({ workloads: [a] });
    assert.equal(s.workloadByHostname('default', 'a.example'), a);
    assert.deepEqual(s.workloadsByName('default', 'a'), [a]);
  });

  it('serves lookups from indexes at 10k workloads', () => {
    const s = new WorkloadStore();
    const many = Array.from({ length: 10_000 }, (_, i) =>
      workload({ name: `w${i}`, workloadIps: [`10.${(i >> 8) & 255}.${i & 255}.1`], services: { [`default/svc${i % 10}`]: { 80: 8080 } } }),
    );
    s.replaceAll({ workloads: many, services: [], policies: [] });
    const start = process.hrtime.bigint();
    for (let i = 0; i < 10_000; i++) assert.ok(s.workloadByIp('', `10.${(i >> 8) & 255}.${i & 255}.1`));
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.ok(ms < 1000, `10k lookups took ${ms} ms`);
    assert.equal(s.endpoints('default/svc3').length, 1000);
  });
});

describe('WorkloadStore: services', () => {
  it('finds a service by key, VIP and hostname', () => {
    const s = new WorkloadStore();
    const web = service({
      name: 'web',
      vips: [
        { network: '', address: '10.96.0.1' },
        { network: 'n2', address: 'FD00::1' },
      ],
    });
    s.apply({ services: [web] });
    assert.equal(s.service('default/web.default.svc.cluster.local'), web);
    assert.equal(s.serviceByVip('', '10.96.0.1'), web);
    assert.equal(s.serviceByVip('n2', 'fd00::1'), web);
    assert.equal(s.serviceByVip('n2', '10.96.0.1'), undefined);
    assert.equal(s.serviceByHostname('WEB.default.svc.cluster.local'), web, 'hostnames are case-insensitive');
  });

  it('prefers the canonical service when several share a VIP', () => {
    const s = new WorkloadStore();
    const vips = [{ network: '', address: '10.96.0.7' }];
    const se = service({ name: 'se', namespace: 'other', canonical: false, vips });
    const canonical = service({ name: 'svc', namespace: 'owner', canonical: true, vips });
    s.apply({ services: [se, canonical] });
    assert.equal(s.serviceByVip('', '10.96.0.7'), canonical);
    assert.equal(s.serviceByVip('', '10.96.0.7', 'other'), se, "the client's own namespace wins over canonical");
  });

  it('hides a namespace-visible service from clients in other namespaces', () => {
    const s = new WorkloadStore();
    const local = service({ name: 'local', namespace: 'team', visibility: 'Namespace', vips: [{ network: '', address: '10.96.0.8' }] });
    s.apply({ services: [local] });
    assert.equal(s.serviceByVip('', '10.96.0.8', 'team'), local);
    assert.equal(s.serviceByVip('', '10.96.0.8', 'elsewhere'), undefined);
    assert.equal(s.serviceByHostname(local.hostname, 'elsewhere'), undefined);
  });

  it('prefers the service in the preferred namespace among services of one hostname', () => {
    const s = new WorkloadStore();
    const a = service({ name: 'ext', namespace: 'a', hostname: 'api.example.com', canonical: false });
    const b = service({ name: 'ext', namespace: 'b', hostname: 'api.example.com', canonical: false });
    s.apply({ services: [a, b] });
    assert.equal(s.serviceByHostname('api.example.com', 'b'), b);
    assert.equal(s.serviceByHostname('api.example.com'), a, 'first stored without a preference');
  });

  it('falls back to the longest matching CIDR VIP', () => {
    const s = new WorkloadStore();
    const wide = service({ name: 'wide', cidrVips: [{ network: '', cidr: { address: '10.200.0.0', prefixLength: 16 } }] });
    const narrow = service({ name: 'narrow', cidrVips: [{ network: '', cidr: { address: '10.200.1.0', prefixLength: 24 } }] });
    s.apply({ services: [wide, narrow] });
    assert.equal(s.serviceByVip('', '10.200.1.5'), narrow);
    assert.equal(s.serviceByVip('', '10.200.2.5'), wide);
    assert.equal(s.serviceByVip('', '10.201.0.1'), undefined);
  });

  it('re-indexes a service whose VIPs changed and forgets a removed one', () => {
    const s = new WorkloadStore();
    s.apply({ services: [service({ name: 'web', vips: [{ network: '', address: '10.96.0.1' }] })] });
    const moved = service({ name: 'web', vips: [{ network: '', address: '10.96.0.2' }] });
    s.apply({ services: [moved] });
    assert.equal(s.serviceByVip('', '10.96.0.1'), undefined);
    assert.equal(s.serviceByVip('', '10.96.0.2'), moved);
    s.apply({ removedServices: ['default/web.default.svc.cluster.local'] });
    assert.equal(s.serviceByVip('', '10.96.0.2'), undefined);
    assert.equal(s.serviceByHostname(moved.hostname), undefined);
  });

  it('lists as endpoints the workloads that name the service', () => {
    const s = new WorkloadStore();
    const key = 'default/web.default.svc.cluster.local';
    const a = workload({ name: 'a', services: { [key]: { 80: 8080 } } });
    const b = workload({ name: 'b', services: { [key]: { 80: 9090 } } });
    const c = workload({ name: 'c' });
    s.apply({ workloads: [a, b, c] });
    assert.deepEqual(uids(s.endpoints(key)), [a.uid, b.uid]);
    assert.equal(s.endpoints(key), s.endpoints(key), 'the list is cached between changes');
  });
});

describe('WorkloadStore: policies', () => {
  it('selects global, own-namespace and listed policies for a workload, skipping unknown keys', () => {
    const s = new WorkloadStore();
    const global = policy({ name: 'mesh-wide', namespace: 'istio-system', scope: 'Global' });
    const ns = policy({ name: 'ns-wide', namespace: 'default', scope: 'Namespace' });
    const otherNs = policy({ name: 'ns-wide', namespace: 'other', scope: 'Namespace' });
    const selected = policy({ name: 'selected', namespace: 'default', scope: 'WorkloadSelector' });
    const notSelected = policy({ name: 'not-selected', namespace: 'default', scope: 'WorkloadSelector' });
    s.apply({ policies: [global, ns, otherNs, selected, notSelected] });
    const w = workload({ name: 'a', authorizationPolicies: ['default/selected', 'default/missing', 'default/ns-wide'] });
    assert.deepEqual(keys(s.policiesForWorkload(w)).sort(), ['default/ns-wide', 'default/selected', 'istio-system/mesh-wide']);
  });

  it('moves a policy between scopes when it is replaced, and drops it when removed', () => {
    const s = new WorkloadStore();
    s.apply({ policies: [policy({ name: 'p', scope: 'Namespace' })] });
    const w = workload({ name: 'a' });
    assert.deepEqual(keys(s.policiesForWorkload(w)), ['default/p']);
    s.apply({ policies: [policy({ name: 'p', scope: 'WorkloadSelector' })] });
    assert.deepEqual(keys(s.policiesForWorkload(w)), []);
    assert.equal(s.policy('default/p')?.scope, 'WorkloadSelector');
    s.apply({ removedPolicies: ['default/p'] });
    assert.equal(s.policy('default/p'), undefined);
  });
});

describe('WorkloadStore: versions and change events', () => {
  it('reports what changed, with a new version, once per apply', () => {
    const s = new WorkloadStore();
    const changes = recording(s);
    s.apply({ workloads: [workload({ name: 'a' })], services: [service({ name: 'web' })], policies: [policy({ name: 'p' })] });
    assert.equal(changes.length, 1);
    const c = changes[0];
    assert.ok(c);
    assert.equal(c.version, 1);
    assert.equal(s.version, 1);
    assert.deepEqual(c.workloads, { upserted: ['Kubernetes//Pod/default/a'], removed: [] });
    assert.deepEqual(c.services.upserted, ['default/web.default.svc.cluster.local']);
    assert.deepEqual(c.policies.upserted, ['default/p']);
    assert.equal(c.authorizationChanged, true);
    assert.equal(c.replaced, false);
  });

  it('stays quiet when nothing changes', () => {
    const s = new WorkloadStore();
    s.apply({ workloads: [workload({ name: 'a' })] });
    const changes = recording(s);
    s.apply({ workloads: [workload({ name: 'a' })] });
    s.apply({ removedWorkloads: ['unknown'] });
    s.apply({});
    assert.deepEqual(changes, []);
    assert.equal(s.version, 1);
  });

  it('flags authorization changes when a workload selects other policies, not on other workload edits', () => {
    const s = new WorkloadStore();
    s.apply({ workloads: [workload({ name: 'a' })] });
    const changes = recording(s);
    s.apply({ workloads: [workload({ name: 'a', canonicalRevision: 'v2' })] });
    s.apply({ workloads: [workload({ name: 'a', canonicalRevision: 'v2', authorizationPolicies: ['default/strict'] })] });
    assert.deepEqual(
      changes.map((c) => c.authorizationChanged),
      [false, true],
    );
  });

  it('reports a removed policy as an authorization change', () => {
    const s = new WorkloadStore();
    s.apply({ policies: [policy({ name: 'p' })] });
    const changes = recording(s);
    s.apply({ removedPolicies: ['default/p'] });
    assert.deepEqual(changes[0]?.policies, { upserted: [], removed: ['default/p'] });
    assert.equal(changes[0]?.authorizationChanged, true);
  });

  it('replaceAll reports only the difference from the previous state', () => {
    const s = new WorkloadStore();
    const a = workload({ name: 'a', workloadIps: ['10.0.0.1'] });
    const b = workload({ name: 'b', workloadIps: ['10.0.0.2'] });
    s.replaceAll({ workloads: [a, b], services: [], policies: [policy({ name: 'p' })] });
    const changes = recording(s);
    const b2 = workload({ name: 'b', workloadIps: ['10.0.0.3'] });
    const c = workload({ name: 'c', workloadIps: ['10.0.0.4'] });
    s.replaceAll({ workloads: [b2, c], services: [], policies: [policy({ name: 'p' })] });
    assert.equal(changes.length, 1);
    assert.deepEqual(changes[0]?.workloads, { upserted: [b2.uid, c.uid], removed: [a.uid] });
    assert.deepEqual(changes[0]?.policies, { upserted: [], removed: [] });
    assert.equal(changes[0]?.replaced, true);
    assert.equal(changes[0]?.authorizationChanged, false);
    assert.deepEqual(uids(s.workloads()).sort(), [b2.uid, c.uid]);
    assert.equal(s.workloadByIp('', '10.0.0.1'), undefined);
    assert.equal(s.workloadByIp('', '10.0.0.2'), undefined);
    assert.equal(s.workloadByIp('', '10.0.0.3'), b2);
  });

  it('stops telling a listener that unsubscribed, and tells the others when one throws', () => {
    const s = new WorkloadStore();
    const heard: number[] = [];
    const off = s.onChange((c) => heard.push(c.version));
    s.onChange(() => {
      throw new Error('listener bug');
    });
    const after: number[] = [];
    s.onChange((c) => after.push(c.version));
    assert.throws(() => s.apply({ workloads: [workload({ name: 'a' })] }), /listener bug/);
    assert.ok(s.workload('Kubernetes//Pod/default/a'), 'the change is applied even though a listener threw');
    off();
    assert.throws(() => s.apply({ workloads: [workload({ name: 'b' })] }), /listener bug/);
    assert.deepEqual(heard, [1]);
    assert.deepEqual(after, [1, 2]);
  });

  it('snapshots everything sorted by key', () => {
    const s = new WorkloadStore();
    s.apply({ workloads: [workload({ name: 'b' }), workload({ name: 'a' })], policies: [policy({ name: 'z' }), policy({ name: 'y' })] });
    const snap = s.snapshot();
    assert.deepEqual(uids(snap.workloads), ['Kubernetes//Pod/default/a', 'Kubernetes//Pod/default/b']);
    assert.deepEqual(keys(snap.policies), ['default/y', 'default/z']);
  });
});
